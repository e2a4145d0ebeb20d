"""WebSocket `GET /core/v1/updates/stream?merchant_id=`: one merchant's live updates as JSON text frames.

The first frame is `{"type": "subscribed", "merchant_id": ...}`, sent once the subscription is live;
then `customer.updated` and `import.progress` messages (README, "Live updates"). Frames from the client
are ignored. Authentication: a Bearer header or an `access_token` query parameter on the upgrade
(checked before it: 401/403/429 as HTTP), or else a first client frame
`{"type": "connection_init", "payload": {"token": "<jwt>"}}` (for browsers that will not put the token
in the URL). Close codes: 4403 connection_init rejected (the reason starts with UNAUTHENTICATED or
FORBIDDEN), 4429 rate limited, 4503 unavailable, 4408 no connection_init in time, 4008 the client
fell behind and was dropped, 1001 the worker is stopping.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import suppress

from aiohttp import web

from core_app.domain.events import parse_uuid
from core_app.fanout import Subscription, UpdateFilter, get_hub
from core_app.security import VIEW
from core_app.security.errors import SecurityError
from core_app.security.ws import authenticate_connection_init, close_code, close_reason
from core_app.settings import get_settings
from views.customer_list import principal_of
from views.errors import error_body
from views.live import CLOSE_GOING_AWAY, CLOSE_TOO_SLOW, TOO_SLOW_REASON, close_socket, live_socket, open_live
from views.refusals import log_refusal
from views.wiring import components_of

log = logging.getLogger(__name__)
CLOSE_INIT_TIMEOUT = 4408


async def updates_stream(request: web.Request) -> web.StreamResponse:
    merchant_id = parse_uuid(request.query.get("merchant_id"), "merchant_id")  # 400 naming it
    ws = live_socket()
    if not ws.can_prepare(request).ok:
        message = "this route is a WebSocket: send an Upgrade: websocket request"
        return error_body(426, message, code="UPGRADE_REQUIRED")
    principal = principal_of(request)
    authenticated = principal is not None
    if authenticated:  # a Bearer header on the upgrade: refusals are plain HTTP 401/403/429
        await components_of(request).security.guard(principal, merchant_id, VIEW)
    await open_live(request, ws)
    if not authenticated and not await _authenticate_on_init(request, ws, merchant_id):
        return ws
    subscription = get_hub().subscribe(UpdateFilter(merchant_id), "websocket")
    try:
        await ws.send_json({"type": "subscribed", "merchant_id": merchant_id})
        await _serve(request, ws, subscription)
    finally:
        subscription.close()
    return ws


async def _authenticate_on_init(request: web.Request, ws: web.WebSocketResponse, merchant_id: str) -> bool:
    """No Authorization header: the first frame must be `{"type": "connection_init", "payload":
    {"token": "<jwt>"}}`, as on graphql-transport-ws. A refusal closes 4403/4429/4503."""
    try:
        frame = await ws.receive_json(timeout=get_settings().graphql_ws_init_timeout)
    except (TimeoutError, ValueError, TypeError):
        await close_socket(request, ws, CLOSE_INIT_TIMEOUT, "expected connection_init first")
        return False
    payload = frame.get("payload") if isinstance(frame, dict) else None
    try:
        principal = await authenticate_connection_init(
            components_of(request).security, payload, request.headers, request.remote, endpoint="updates"
        )
        await components_of(request).security.guard(principal, merchant_id, VIEW)
    except SecurityError as exc:
        log_refusal(request, exc.http_status, exc.code, merchant_id=merchant_id)
        await close_socket(request, ws, close_code(exc), close_reason(exc).decode(errors="ignore"))
        return False
    return True


async def _serve(request: web.Request, ws: web.WebSocketResponse, subscription: Subscription) -> None:
    """Send updates until the client leaves, the subscription ends, or it is dropped for lag."""
    tasks = {
        asyncio.create_task(_send_updates(ws, subscription)),
        asyncio.create_task(_read_until_closed(ws)),
        asyncio.create_task(subscription.ended.wait()),
    }
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
    if subscription.dropped:
        await close_socket(request, ws, CLOSE_TOO_SLOW, TOO_SLOW_REASON)
    elif not ws.closed:  # the hub closed the subscription: the worker is stopping
        await close_socket(request, ws, CLOSE_GOING_AWAY, "worker shutting down")


async def _send_updates(ws: web.WebSocketResponse, subscription: Subscription) -> None:
    async for update in subscription:
        await ws.send_str(json.dumps(update, separators=(",", ":"), default=str))


async def _read_until_closed(ws: web.WebSocketResponse) -> None:
    """Consume client frames (pongs and close are handled by aiohttp) until the socket closes."""
    async for _message in ws:
        pass
