"""`/health` (dependencies answer) and `/ready` (migrations applied, Redis up, tables recovered)."""

from __future__ import annotations

from aiohttp import web

from core_app.runtime import get_runtime


async def health(request: web.Request) -> web.Response:
    report = await get_runtime().health.check()
    if report.up:
        return web.json_response({"status": "UP"})
    return web.json_response(report.to_dict(), status=503)


async def ready(request: web.Request) -> web.Response:
    checks = await get_runtime().is_ready()
    if all(checks.values()):
        return web.json_response({"ready": True})
    return web.json_response({"ready": False, "checks": checks}, status=503)
