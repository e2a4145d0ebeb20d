"""In-process security layers and apps over the real PostgreSQL and Redis (no Faust worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from core_app import db
from core_app.redis_client import open_redis
from core_app.security import RFM_SCORE, VIEW
from core_app.security.http import PRINCIPAL
from core_app.security.layer import SecurityLayer
from core_app.security.principal import current_principal
from core_app.settings import Settings
from tests.support.processes import free_port
from views.pipeline import build_app


@asynccontextmanager
async def open_layer(settings: Settings, **overrides: Any) -> AsyncIterator[SecurityLayer]:
    """A layer with its own Redis client and pool, like one worker's."""
    configured = settings.model_copy(update={"auth_enabled": True, **overrides})
    pool = await db.create_pool(configured, minsize=0, maxsize=2)
    redis = open_redis(configured)
    layer = SecurityLayer(configured, redis, pool)
    layer.start()
    try:
        yield layer
    finally:
        layer.close()
        await redis.aclose()
        pool.close()
        await pool.wait_closed()


Route = tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]
# The layer `serve` runs with, for handlers that guard (the service's views reach it through Components).
LAYER = web.AppKey("layer", SecurityLayer)


@asynccontextmanager
async def serve(layer: SecurityLayer, routes: list[Route]) -> AsyncIterator[str]:
    """An aiohttp app with the service's pipeline and `routes`, on a free port; yields its URL."""
    app = build_app(routes, lambda: layer)
    app[LAYER] = layer
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def whoami(request: web.Request) -> web.Response:
    principal = current_principal.get()
    assert principal is request[PRINCIPAL]
    merchant = request.query.get("merchant_id")
    if merchant is not None:
        flag = RFM_SCORE if request.query.get("flag") else None
        await request.app[LAYER].guard(principal, merchant, VIEW, flag)
    body = await request.read()
    return web.json_response(
        {
            "subject": principal.subject if principal else None,
            "merchant_id": principal.merchant_id if principal else None,
            "client_ip": principal.client_ip if principal else None,
            "body": len(body),
        }
    )


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"principal": current_principal.get() is not None})


ROUTES = [
    ("GET", "/core/v1/whoami", whoami),
    ("POST", "/core/v1/whoami", whoami),
    ("*", "/graphql", whoami),
    ("GET", "/internal/v1/whoami", whoami),
    ("GET", "/health", health),
    ("GET", "/live", health),
]
