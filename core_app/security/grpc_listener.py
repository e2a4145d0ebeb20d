"""The grpclib wiring point: a RecvRequest listener on the server, so every RPC of every service is
covered (health checks and reflection excepted).

Before the handler runs it authenticates `authorization: Bearer <JWT>` metadata and admits the call
(IP allow-list, rate limit per merchant and method); a refusal is a GRPCError (UNAUTHENTICATED,
PERMISSION_DENIED, RESOURCE_EXHAUSTED, UNAVAILABLE) and the handler never runs. It then wraps the
handler so the principal is in the context for `guard()`, and maps SecurityErrors raised inside.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from grpclib import GRPCError
from grpclib.events import RecvRequest, listen
from grpclib.server import Server

from core_app.security import metrics
from core_app.security.errors import SecurityError
from core_app.security.layer import SecurityLayer
from core_app.security.principal import DISABLED, Principal, use_principal

PUBLIC_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


def _grpc_error(exc: SecurityError) -> GRPCError:
    metrics.refused.labels("grpc", exc.grpc_status.name, exc.code).inc()
    return GRPCError(exc.grpc_status, exc.reason)


def _peer_host(peer: Any) -> str | None:
    address = peer.addr() if peer is not None else None
    return str(address[0]) if address else None


def install_grpc_security(server: Server, get_layer: Callable[[], SecurityLayer]) -> None:
    async def on_recv_request(event: RecvRequest) -> None:
        if event.method_name.startswith(PUBLIC_PREFIXES):
            return
        layer = get_layer()
        principal: Principal
        if not layer.enabled:
            principal = DISABLED
        else:
            metadata = event.metadata
            try:
                client_ip = layer.proxies.client_ip(_peer_host(event.peer), metadata.get("x-forwarded-for"))
                principal = await layer.authenticate_bearer(metadata.get("authorization"), client_ip)
                await layer.admit(principal, f"grpc:{event.method_name}")
            except SecurityError as exc:
                raise _grpc_error(exc) from None
        handler: Callable[[Any], Awaitable[None]] = event.method_func

        async def secured(stream: Any) -> None:
            with use_principal(principal):
                try:
                    await handler(stream)
                except SecurityError as exc:
                    raise _grpc_error(exc) from None

        event.method_func = secured

    listen(server, RecvRequest, on_recv_request)
