"""grpclib server events: call latency per method, and the read-source trailing metadata.

Observes `core_request_duration_seconds{transport="grpc", route="/core.v1.CoreService/GetCustomerRFM",
status="OK"}` from the request's arrival to its trailers. grpclib dispatches RecvRequest only for
served methods, so `route` is bounded. Both events run in the call's own task, which holds the
call's start time and its read-source holder (core_app.read_source); a call that read a customer
ends with `x-core-source` trailing metadata (`table`, `owner`, `redis` or `postgres`).
"""

from __future__ import annotations

import time
from contextvars import ContextVar

from grpclib.events import RecvRequest, SendTrailingMetadata, listen
from grpclib.server import Server

from core_app import log_context, metrics, read_source

_call: ContextVar[tuple[str, float] | None] = ContextVar("core_grpc_call", default=None)


async def on_recv_request(event: RecvRequest) -> None:
    _call.set((event.method_name, time.perf_counter()))
    read_source.begin()  # the task ends with the call, and so does the holder
    language = event.metadata.get("accept-language")
    if language:  # the call's log lines carry its locale, and its merchant once guarded (D149)
        log_context.bind(locale=log_context.locale_of(language))


async def on_send_trailing_metadata(event: SendTrailingMetadata) -> None:
    call = _call.get()
    if call is None:
        return
    _call.set(None)
    source = read_source.summary()
    if source is not None:
        event.metadata[read_source.GRPC_METADATA_KEY] = source
    method, started = call
    metrics.observe_request("grpc", method, event.status.name, time.perf_counter() - started)


def instrument(server: Server) -> None:
    listen(server, RecvRequest, on_recv_request)
    listen(server, SendTrailingMetadata, on_send_trailing_metadata)
