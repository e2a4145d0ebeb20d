"""In-process security layers and apps over the real PostgreSQL and Redis (no Faust worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from core_app import db
from core_app.security.layer import SecurityLayer
from core_app.settings import Settings
from tests.helpers import free_port
from views.pipeline import build_app


@asynccontextmanager
async def open_layer(settings: Settings, **overrides: Any) -> AsyncIterator[SecurityLayer]:
    """A layer with its own Redis client and pool, like one worker's."""
    configured = settings.model_copy(update={"auth_enabled": True, **overrides})
    pool = await db.create_pool(configured, minsize=0, maxsize=2)
    redis = Redis.from_url(configured.redis_dsn)
    layer = SecurityLayer(configured, redis, pool)
    try:
        yield layer
    finally:
        layer.close()
        await redis.aclose()
        pool.close()
        await pool.wait_closed()


Route = tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]


@asynccontextmanager
async def serve(layer: SecurityLayer, routes: list[Route]) -> AsyncIterator[str]:
    """An aiohttp app with the service's pipeline and `routes`, on a free port; yields its URL."""
    app = build_app(routes, lambda: layer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
