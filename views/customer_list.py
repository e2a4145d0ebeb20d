"""REST list and search: `GET /core/v1/customers?merchant_id=` without `customer_id`."""

from __future__ import annotations

from aiohttp import web

from core_app.domain.customer_query import RANGE_PARAMS
from core_app.domain.errors import ValidationFailed
from core_app.runtime import get_runtime
from core_app.services import customer_list
from views.responses import json_body

LIST_PARAMS = frozenset(
    {"limit", "cursor", "segment", "updated_since", "email", "tag", "redacted", "fields", *RANGE_PARAMS}
)
PARAMS = LIST_PARAMS | {"merchant_id"}


def check_single_read(request: web.Request) -> None:
    """A read by customer_id takes no list parameter: refused rather than silently ignored."""
    for name in request.query:
        if name in LIST_PARAMS:
            raise ValidationFailed(name, "is a list parameter; drop customer_id to list")


async def list_customers(request: web.Request) -> web.Response:
    query = request.query
    for name in query:
        if name not in PARAMS:
            raise ValidationFailed(name, "is not a parameter of this route")
        if len(query.getall(name)) > 1:
            raise ValidationFailed(name, "is given more than once")
    raw = {name: query[name] for name in query}
    if "merchant_id" not in raw:
        raise ValidationFailed("merchant_id", "is required")
    deps = customer_list.deps_for(get_runtime())
    page = await customer_list.list_customers(deps, raw, transport="rest")
    return json_body(page.to_json())
