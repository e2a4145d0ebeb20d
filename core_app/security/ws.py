"""For WebSocket modules: authenticate a connection from its connection-init payload.

graphql-transport-ws (`/graphql`) and `/core/v1/updates/stream` upgrades that carried no
`Authorization` header reach their handler unauthenticated, with no principal in the context (so
every `guard()` refuses). The handler must call, on `connection_init`:

    principal = await authenticate_connection_init(payload, request.headers, request.remote)
    with use_principal(principal): ...serve the connection...

and close with 4401 on Unauthenticated, 4403 on Forbidden, 4429 on RateLimited. Each subscription
then calls `guard(merchant_id, VIEW)` for the merchant it streams.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core_app.security.layer import get_security
from core_app.security.principal import DISABLED, Principal

CLOSE_CODES = {"UNAUTHENTICATED": 4401, "FORBIDDEN": 4403, "RATE_LIMITED": 4429, "UNAVAILABLE": 4503}


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
    payload: Any, headers: Mapping[str, str], peer: str | None = None, *, endpoint: str = "ws"
) -> Principal:
    """The connection's principal from `{"authorization": "Bearer <jwt>"}` or `{"token": "<jwt>"}`
    in the payload (or the upgrade's Authorization header); raises a SecurityError otherwise."""
    layer = get_security()
    if not layer.enabled:
        return DISABLED
    client_ip = layer.proxies.client_ip(peer, headers.get("X-Forwarded-For"))
    principal = await layer.authenticate_bearer(_authorization(payload, headers), client_ip)
    await layer.admit(principal, f"ws:{endpoint}")
    return principal
