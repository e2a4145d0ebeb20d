"""REST `GET /core/v1/admin/dlq`: the merchant's dead letters (core_app/services/admin_dlq.py)."""

from __future__ import annotations

from aiohttp import web

from core_app.runtime import get_runtime
from core_app.services.admin_dlq import list_dead_letters


async def get_dead_letters(request: web.Request) -> web.Response:
    query = request.query
    letters = await list_dead_letters(
        get_runtime(),
        query.get("merchant_id"),
        query.get("topic"),
        query.get("reason"),
        query.get("since"),
        query.get("limit"),
    )
    return web.json_response({"dead_letters": letters})
