"""OpenTelemetry traces, exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Most spans come from the instrumentation libraries, so no view or service changes: a span per HTTP
request served (aiohttp server), per call to another worker (aiohttp client: the owner hop, which
carries W3C `traceparent`, so the owner's server span joins the caller's trace), per PostgreSQL
statement (aiopg), per Redis command and per Kafka record sent (aiokafka: the producer span joins the
current trace and writes `traceparent` into the record's headers). Two are ours (docs/decisions.md
D148): a server span per gRPC call (grpclib has no instrumentation package; `instrument_grpc`), and a
consumer span per batch an agent applies (`batch_span`), which continues the producers' trace when
the batch holds one, and otherwise links to each producer's context. Log records get the current
trace and span ids (`trace_id`, `span_id` in the JSON lines, core_app/logs.py).

Without an endpoint nothing here is imported from OpenTelemetry and `batch_span` is a null context.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any

from core_app.settings import Settings

log = logging.getLogger(__name__)

_provider: Any = None
MAX_LINKS = 32  # producers' contexts linked from one batch span (the SDK keeps 128 at most)
# The statuses that mark a server span as failed (OpenTelemetry's gRPC conventions); the others are
# the caller's error.
GRPC_SERVER_ERRORS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)
_grpc_call: ContextVar[tuple[Any, object] | None] = ContextVar("core_grpc_span", default=None)


def configure_tracing(settings: Settings) -> bool:
    """Before the web app is built (the server instrumentation wraps web.Application)."""
    global _provider
    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/")
    if not endpoint or _provider is not None:
        return _provider is not None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.instrumentation.aiopg import AiopgInstrumentor
    from opentelemetry.instrumentation.logging import LoggingInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": "core", "service.instance.id": settings.worker_id})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    trace.set_tracer_provider(provider)
    AioHttpServerInstrumentor().instrument()
    AioHttpClientInstrumentor().instrument()
    AiopgInstrumentor().instrument()
    RedisInstrumentor().instrument()
    AIOKafkaInstrumentor().instrument()  # traceparent into produced records' headers, consume spans
    LoggingInstrumentor().instrument(inject_trace_context=True, enable_log_auto_instrumentation=False)
    _provider = provider
    log.info("tracing to %s", endpoint)
    return True


def shutdown_tracing() -> None:
    """Export what is buffered (on worker stop)."""
    global _provider
    if _provider is not None:
        provider, _provider = _provider, None
        provider.shutdown()  # type: ignore[attr-defined]


def enabled() -> bool:
    return _provider is not None


def _traceparent(headers: Any) -> Any:
    """A record's `traceparent` header as it came (bytes from Kafka), from a mapping (Faust's events)
    or pairs (aiokafka's records); None without one."""
    if not headers:
        return None
    if type(headers) is dict or isinstance(headers, Mapping):
        return headers.get("traceparent")
    return next((value for name, value in headers if name == "traceparent"), None)


def producer_contexts(headers_of: Iterable[Any], limit: int = MAX_LINKS) -> tuple[list[Any], int]:
    """The distinct producers' span contexts in records' headers (one per trace, at most `limit`),
    and how many records carried a `traceparent`. Only the first record of each trace is parsed by
    the propagator (about 10 us); the others cost a slice and a dictionary lookup."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()
    by_trace: dict[Any, Any] = {}  # trace id as sent -> its first valid context, None if invalid
    carried = 0
    for headers in headers_of:
        value = _traceparent(headers)
        if value is None or len(value) < 55:
            continue
        trace_id = value[3:35]
        known = by_trace.get(trace_id, by_trace)  # `by_trace` itself: not seen yet
        if known is by_trace:
            if len(by_trace) >= limit:
                carried += 1
                continue
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            found = trace.get_current_span(propagator.extract({"traceparent": text})).get_span_context()
            known = by_trace[trace_id] = found if found.is_valid else None
        if known is not None:
            carried += 1
    return [context for context in by_trace.values() if context is not None], carried


def batch_span(topic: str, headers_of: Iterable[Any], provider: Any = None) -> AbstractContextManager[None]:
    """The span of one batch of `topic`'s records an agent applies (`headers_of`: each record's
    headers). A null context unless tracing is on (or `provider` is given, in tests)."""
    provider = provider or _provider
    if provider is None:
        return nullcontext()
    return _batch_span(provider, topic, list(headers_of))


@contextmanager
def _batch_span(provider: Any, topic: str, headers_of: list[Any]) -> Iterator[None]:
    from opentelemetry import trace
    from opentelemetry.trace import Link, SpanKind

    producers, carried = producer_contexts(headers_of)
    attributes = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.operation.type": "process",
        "messaging.batch.message_count": len(headers_of),
        "core.batch.traced_records": carried,
    }
    if len(producers) == 1:  # one trace: the batch continues it (a request's command, say)
        parent = trace.set_span_in_context(trace.NonRecordingSpan(producers[0]))
        links: list[Link] = []
    else:  # several (or none): a trace of its own, linked to each producer's
        parent = None
        links = [Link(context) for context in producers]
    tracer = trace.get_tracer(__name__, tracer_provider=provider)
    with tracer.start_as_current_span(
        f"{topic} process", context=parent, kind=SpanKind.CONSUMER, links=links, attributes=attributes
    ):
        yield


def instrument_grpc(server: Any) -> None:
    """A server span per gRPC call, continuing the caller's `traceparent` metadata. Listeners run in
    the call's own task, in the order registered: install before the security listener, so refused
    calls have their span too."""
    from grpclib.events import RecvRequest, SendTrailingMetadata, listen

    listen(server, RecvRequest, _grpc_call_started)
    listen(server, SendTrailingMetadata, _grpc_call_ended)


async def _grpc_call_started(event: Any) -> None:
    from opentelemetry import context, trace
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    traceparent = event.metadata.get("traceparent")
    parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent}) if traceparent else None
    service, _, method = event.method_name.strip("/").partition("/")
    span = trace.get_tracer(__name__, tracer_provider=_provider).start_span(
        event.method_name.lstrip("/"),
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
    )
    token = context.attach(trace.set_span_in_context(span))  # the handler's spans are its children
    _grpc_call.set((span, token))


async def _grpc_call_ended(event: Any) -> None:
    from opentelemetry import context
    from opentelemetry.trace import Status, StatusCode

    call = _grpc_call.get()
    if call is None:
        return
    _grpc_call.set(None)
    span, token = call
    span.set_attribute("rpc.grpc.status_code", int(event.status.value))
    if event.status.name in GRPC_SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, event.status_message or event.status.name))
    span.end()
    try:
        context.detach(token)
    except ValueError:  # attached in another context: the span is ended all the same
        pass
