"""WebSocket `GET /core/v1/updates/stream?merchant_id=`: one merchant's live updates as JSON text frames.

The first frame is `{"type": "subscribed", "merchant_id": ...}`, sent once the subscription is live;
then `customer.updated` and `import.progress` messages (README, "Live updates"). Frames from the client
are ignored. Close codes: 4008 the client fell behind and was dropped, 1001 the worker is stopping.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import suppress

from aiohttp import web

from core_app.domain.events import parse_uuid
from core_app.fanout import Subscription, UpdateFilter, get_hub
from views.callers import Unauthenticated, resolve_caller
from views.errors import error_body
from views.live import CLOSE_GOING_AWAY, CLOSE_TOO_SLOW, TOO_SLOW_REASON, close_socket, live_socket, open_live

log = logging.getLogger(__name__)


async def updates_stream(request: web.Request) -> web.StreamResponse:
    merchant_id = parse_uuid(request.query.get("merchant_id"), "merchant_id")  # 400 naming it
    try:
        request["caller"] = await resolve_caller(request)
    except Unauthenticated as exc:
        return error_body(401, str(exc) or "unauthenticated")
    ws = live_socket()
    if not ws.can_prepare(request).ok:
        return error_body(426, "this route is a WebSocket: send an Upgrade: websocket request")
    subscription = get_hub().subscribe(UpdateFilter(merchant_id), "websocket")
    try:
        await open_live(request, ws)
        await ws.send_json({"type": "subscribed", "merchant_id": merchant_id})
        await _serve(request, ws, subscription)
    finally:
        subscription.close()
    return ws


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
