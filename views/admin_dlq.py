"""REST `GET /core/v1/admin/dlq`: the merchant's dead letters (core_app/services/admin_dlq.py)."""

from __future__ import annotations

from aiohttp import web

from views.responses import principal_of
from views.wiring import components_of


async def get_dead_letters(request: web.Request) -> web.Response:
    query = request.query
    letters = await components_of(request).admin_dead_letters.list(
        principal_of(request),
        query.get("merchant_id"),
        query.get("topic"),
        query.get("reason"),
        query.get("since"),
        query.get("limit"),
    )
    return web.json_response({"dead_letters": letters})
