"""REST `/core/v1/settings`."""

from __future__ import annotations

from aiohttp import web

from core_app.domain.errors import ValidationFailed
from core_app.services import settings as service


async def get_settings(request: web.Request) -> web.Response:
    merchant_id = request.query.get("merchant_id")
    if not merchant_id:
        raise ValidationFailed("merchant_id", "is required")
    return web.json_response(await service.get_program_settings(merchant_id))


async def update_settings(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        raise ValidationFailed("body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise ValidationFailed("body", "must be a JSON object")
    settings = await service.update_program_settings(
        body.get("merchant_id"), body.get("rfm_thresholds"), body.get("loyalty_config")
    )
    return web.json_response(settings)
