"""REST `GET /core/v1/segments?merchant_id=`: the merchant's RFM segment counts."""

from __future__ import annotations

from aiohttp import web

from core_app.domain.errors import ValidationFailed
from core_app.services import segments
from views.customer_list import principal_of
from views.responses import json_body
from views.wiring import components_of


async def get_segments(request: web.Request) -> web.Response:
    merchant_id = request.query.get("merchant_id")
    if not merchant_id:
        raise ValidationFailed("merchant_id", "is required")
    deps = components_of(request).segments
    return json_body(await segments.segment_counts(deps, principal_of(request), merchant_id))
