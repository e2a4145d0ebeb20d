"""REST `GET /core/v1/customers/{customer_id}/timeline?merchant_id=&limit=&cursor=`: the customer's
timeline, newest change first (core_app/services/customer_timeline.py)."""

from __future__ import annotations

from aiohttp import web

from core_app.domain.errors import ValidationFailed
from core_app.services.customer_timeline import customer_timeline
from views.customer_list import principal_of
from views.responses import json_body
from views.wiring import components_of

PARAMS = frozenset({"merchant_id", "limit", "cursor"})


async def get_timeline(request: web.Request) -> web.Response:
    query = request.query
    for name in query:
        if name not in PARAMS:
            raise ValidationFailed(name, "is not a parameter of this route")
        if len(query.getall(name)) > 1:
            raise ValidationFailed(name, "is given more than once")
    if not query.get("merchant_id"):
        raise ValidationFailed("merchant_id", "is required")
    page = await customer_timeline(
        components_of(request).customer_timeline,
        principal_of(request),
        query["merchant_id"],
        request.match_info["customer_id"],
        limit=query.get("limit"),
        cursor=query.get("cursor"),
    )
    return json_body(page)
