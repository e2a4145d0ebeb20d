"""Who is calling: the one hook where live-update transports will authenticate.

Authentication is the security issue's work (JWT for GraphQL and WebSocket, then merchant scoping:
the token's merchant must equal the requested one). Until then every caller is anonymous and allowed.
Both live transports call `resolve_caller` before they subscribe anyone:

- `GET /core/v1/updates/stream`, before the upgrade: raising `Unauthenticated` answers 401;
- GraphQL over `graphql-transport-ws`, on `connection_init` (its payload is `connection_params`):
  raising `Unauthenticated` closes the socket with 4403 Forbidden.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web


class Unauthenticated(Exception):
    """The caller could not be authenticated, or may not see the requested merchant."""


@dataclass(frozen=True, slots=True)
class Caller:
    subject: str = "anonymous"
    merchant_id: str | None = None  # None: not scoped to a merchant (no authentication yet)


async def resolve_caller(
    request: web.Request, connection_params: Mapping[str, object] | None = None
) -> Caller:
    """The authenticated caller of `request` (HTTP headers, or the WebSocket init payload).

    Security issue: verify the JWT here and raise `Unauthenticated` on failure.
    """
    return Caller()
