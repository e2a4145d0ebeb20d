"""For WebSocket modules: authenticate a connection from its connection-init payload.

graphql-transport-ws (`/graphql`) and `/core/v1/updates/stream` upgrades that carried no
`Authorization` header reach their handler unauthenticated, with no principal in the context (so
every `guard()` refuses). The handler must call, on `connection_init`:

    principal = await authenticate_connection_init(layer, payload, request.headers, request.remote)
    with use_principal(principal): ...serve the connection...

and close with `CLOSE_CODES[exc.code]` and `close_reason(exc)`: 4403 for a rejected connection_init
(unauthenticated or forbidden: the reason starts with the code), 4429 rate limited, 4503 unavailable.
An upgrade that carries a token (the Authorization header or `access_token`) was already checked by
the HTTP pipeline and refused with a plain 401/403/429 before any upgrade. Each subscription then
calls `guard(merchant_id, VIEW)` for the merchant it streams.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core_app.security.errors import SecurityError
from core_app.security.layer import SecurityLayer
from core_app.security.principal import DISABLED, Principal

# graphql-transport-ws closes a rejected connection_init with 4403 (its 4401 means "subscribe before
# connection_ack"); the updates stream uses the same codes (docs/decisions.md D154).
CLOSE_REJECTED = 4403
CLOSE_CODES = {
    "UNAUTHENTICATED": CLOSE_REJECTED,
    "FORBIDDEN": CLOSE_REJECTED,
    "FEATURE_DISABLED": CLOSE_REJECTED,
    "RATE_LIMITED": 4429,
    "UNAVAILABLE": 4503,
}
MAX_CLOSE_REASON = 123  # bytes: a close frame's payload is at most 125, 2 of them the code


def close_code(exc: SecurityError) -> int:
    return CLOSE_CODES.get(exc.code, CLOSE_REJECTED)


def close_reason(exc: SecurityError) -> bytes:
    """`UNAUTHENTICATED: token expired`: the code first, so a client can tell the refusals apart."""
    return f"{exc.code}: {exc.reason}".encode()[:MAX_CLOSE_REASON]


def _authorization(payload: Any, headers: Mapping[str, str]) -> str | None:
    if isinstance(payload, Mapping):
        for name in ("authorization", "Authorization"):
            value = payload.get(name)
            if isinstance(value, str):
                return value
        token = payload.get("token")
        if isinstance(token, str):
            return f"Bearer {token}"
    return headers.get("Authorization")


async def authenticate_connection_init(
    layer: SecurityLayer,
    payload: Any,
    headers: Mapping[str, str],
    peer: str | None = None,
    *,
    endpoint: str = "ws",
) -> Principal:
    """The connection's principal from `{"authorization": "Bearer <jwt>"}` or `{"token": "<jwt>"}`
    in the payload (or the upgrade's Authorization header); raises a SecurityError otherwise."""
    if not layer.enabled:
        return DISABLED
    client_ip = layer.proxies.client_ip(peer, headers.get("X-Forwarded-For"))
    principal = await layer.authenticate_bearer(_authorization(payload, headers), client_ip)
    await layer.admit(principal, f"ws:{endpoint}")
    return principal


class SecuredSubscriptions:
    """Mixin for graphql_server's GraphQLView: graphql-transport-ws (and graphql-ws) connections
    authenticate on connection_init unless the upgrade already carried a valid Bearer header.

    Refusals close the socket with 4403 / 4429 / 4503 before any subscription runs. The
    principal is set in the connection's context, which each subscription task inherits.
    """

    def refused_connection(self, request: Any, exc: SecurityError) -> None:
        """Called with a rejected connection_init (the view logs it)."""

    def security_layer(self, request: Any) -> SecurityLayer:
        """The worker's security layer (the view finds it in its components)."""
        raise NotImplementedError

    async def on_ws_connect(self, context: Any) -> Any:
        from graphql_server.exceptions import ConnectionRejectionError
        from graphql_server.types.unset import UNSET

        from core_app.security.http import PRINCIPAL
        from core_app.security.principal import current_principal

        request = context["request"]
        if request.get(PRINCIPAL) is not None:
            return UNSET
        try:
            principal = await authenticate_connection_init(
                self.security_layer(request),
                context.get("connection_params"),
                request.headers,
                request.remote,
                endpoint="graphql",
            )
        except SecurityError as exc:
            self.refused_connection(request, exc)
            await context["response"].close(code=close_code(exc), message=close_reason(exc))
            raise ConnectionRejectionError() from None
        current_principal.set(principal)  # reset by the HTTP pipeline when the connection ends
        request[PRINCIPAL] = principal
        return UNSET
