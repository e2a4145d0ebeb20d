"""`/health` (dependencies answer), `/live` (nothing a restart would cure: no stalled partition) and
`/ready` (migrations applied, Redis up, tables recovered, partitions progressing)."""

from __future__ import annotations

from aiohttp import web

from views.wiring import components_of


async def health(request: web.Request) -> web.Response:
    up, body = await components_of(request).health.health()
    return web.json_response(body, status=200 if up else 503)


async def ready(request: web.Request) -> web.Response:
    ready, body = await components_of(request).health.ready()
    return web.json_response(body, status=200 if ready else 503)


async def live(request: web.Request) -> web.Response:
    up, body = await components_of(request).health.live()
    return web.json_response(body, status=200 if up else 503)
