"""REST `/core/v1/settings`."""

from __future__ import annotations

from aiohttp import web

from core_app.domain.errors import ValidationFailed
from core_app.services import settings as service
from views.errors import json_object


async def get_settings(request: web.Request) -> web.Response:
    merchant_id = request.query.get("merchant_id")
    if not merchant_id:
        raise ValidationFailed("merchant_id", "is required")
    return web.json_response(await service.get_program_settings(merchant_id))


async def update_settings(request: web.Request) -> web.Response:
    body = await json_object(request)
    settings = await service.update_program_settings(
        body.get("merchant_id"), body.get("rfm_thresholds"), body.get("loyalty_config")
    )
    return web.json_response(settings)
