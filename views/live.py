"""What the live transports (the updates stream and GraphQL over WebSocket) share: socket options,
close codes, closing a client that cannot keep up, and closing every socket when the worker stops."""

from __future__ import annotations

import asyncio
import logging
import socket
import weakref
from collections.abc import Iterable

from aiohttp import WSCloseCode, web

from core_app.settings import get_settings

log = logging.getLogger(__name__)

# Application close codes (4000-4999). 4008: the client fell more than FANOUT_QUEUE_SIZE updates
# behind and was dropped; it may reconnect and re-read current state through the query APIs.
CLOSE_TOO_SLOW = 4008
TOO_SLOW_REASON = "too slow: fell behind the live updates"
CLOSE_GOING_AWAY = int(WSCloseCode.GOING_AWAY)  # 1001: the worker is shutting down

# Kernel send buffer of a live socket. Linux would otherwise grow it up to tcp_wmem's maximum (4 MiB)
# for a client that stops reading; updates are small, so this bounds memory per client, not throughput.
SEND_BUFFER_BYTES = 256 * 1024

LIVE_SOCKETS = web.AppKey("live_sockets", weakref.WeakSet[web.WebSocketResponse])
_closing: set[asyncio.Task[None]] = set()  # strong references to background close tasks


def live_socket(protocols: Iterable[str] = (), max_msg_size: int = 4 * 1024 * 1024) -> web.WebSocketResponse:
    """A WebSocket response with server pings every WS_HEARTBEAT s (not prepared yet)."""
    settings = get_settings()
    return web.WebSocketResponse(
        protocols=tuple(protocols),
        heartbeat=settings.ws_heartbeat,
        timeout=settings.ws_close_timeout,
        max_msg_size=max_msg_size,
    )


async def open_live(request: web.Request, ws: web.WebSocketResponse) -> None:
    """Upgrade, with a bounded send buffer, and track the socket so that shutdown closes it."""
    sockets = request.app.get(LIVE_SOCKETS)
    if sockets is not None:
        sockets.add(ws)
    _bound_send_buffer(request)
    await ws.prepare(request)


def _bound_send_buffer(request: web.Request) -> None:
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        except OSError as exc:  # not fatal: the queue bound still applies
            log.debug("could not bound the send buffer", extra={"error": str(exc)})


async def close_socket(request: web.Request, ws: web.WebSocketResponse, code: int, reason: str) -> None:
    """Close with `code`, but never wait more than WS_CLOSE_TIMEOUT for a client that does not read.

    The close frame queues behind whatever the client has not read yet; a client that does not read it
    (and answer) in time is cut off (TCP abort) rather than keeping its buffers on this worker.
    """
    try:
        await asyncio.wait_for(ws.close(code=code, message=reason.encode()), get_settings().ws_close_timeout)
        return
    except TimeoutError:
        log.info("client did not complete the close handshake; aborting", extra={"code": code})
    except Exception as exc:  # the connection is already gone
        log.debug("close failed", extra={"error": str(exc)})
    if request.transport is not None:
        request.transport.abort()


def close_later(request: web.Request, ws: web.WebSocketResponse, code: int, reason: str) -> None:
    """`close_socket` from synchronous code (the fan-out's drop callback)."""
    task = asyncio.get_running_loop().create_task(close_socket(request, ws, code, reason))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def close_live_sockets(app: web.Application) -> None:
    """on_shutdown: without this, the runner would wait for every long-lived socket to end by itself."""

    async def going_away(ws: web.WebSocketResponse) -> None:
        await asyncio.wait_for(ws.close(code=CLOSE_GOING_AWAY, message=b"worker shutting down"), 1.0)

    open_sockets = [ws for ws in list(app.get(LIVE_SOCKETS) or ()) if not ws.closed]
    # A client that does not answer within a second is cut off with the server.
    await asyncio.gather(*(going_away(ws) for ws in open_sockets), return_exceptions=True)


def install(app: web.Application) -> None:
    app[LIVE_SOCKETS] = weakref.WeakSet()
    app.on_shutdown.append(close_live_sockets)
