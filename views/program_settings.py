"""REST `/core/v1/settings`: the merchant's loyalty program settings."""

from __future__ import annotations

from aiohttp import web

from core_app.domain.errors import ValidationFailed
from core_app.services.segments import settings_with_counts
from views.errors import json_object
from views.responses import principal_of
from views.wiring import components_of


async def get_settings(request: web.Request) -> web.Response:
    merchant_id = request.query.get("merchant_id")
    if not merchant_id:
        raise ValidationFailed("merchant_id", "is required")
    components = components_of(request)  # the settings with their segment counts (D173)
    view = await settings_with_counts(
        components.program_settings, components.segments, principal_of(request), merchant_id
    )
    return web.json_response(view)


async def update_settings(request: web.Request) -> web.Response:
    body = await json_object(request)
    service = components_of(request).program_settings
    settings = await service.update(
        principal_of(request), body.get("merchant_id"), body.get("rfm_thresholds"), body.get("loyalty_config")
    )
    return web.json_response(settings)
