"""REST `GET /core/v1/segments?merchant_id=`: the merchant's RFM segment counts."""

from __future__ import annotations

from aiohttp import web

from core_app.domain.errors import ValidationFailed
from core_app.runtime import get_runtime
from core_app.services import segments
from views.responses import json_body


async def get_segments(request: web.Request) -> web.Response:
    merchant_id = request.query.get("merchant_id")
    if not merchant_id:
        raise ValidationFailed("merchant_id", "is required")
    runtime = get_runtime()
    adminfeatures = segments.adminfeatures_of(runtime.settings)
    return json_body(await segments.segment_counts(runtime.pool, merchant_id, adminfeatures))
