"""REST list and search: `GET /core/v1/customers?merchant_id=` without `customer_id`."""

from __future__ import annotations

from aiohttp import web

from core_app.domain.customer_query import RANGE_PARAMS
from core_app.domain.errors import ValidationFailed
from core_app.security.http import PRINCIPAL
from core_app.security.principal import Principal
from core_app.services import customer_list
from views.responses import json_body
from views.wiring import components_of

PROJECTION = frozenset({"fields", "include"})  # taken by the single read too
LIST_PARAMS = frozenset(
    {"limit", "cursor", "segment", "updated_since", "email", "tag", "redacted", *PROJECTION, *RANGE_PARAMS}
)
PARAMS = LIST_PARAMS | {"merchant_id"}


def principal_of(request: web.Request) -> Principal | None:
    """The caller the security middleware authenticated (None on an unauthenticated route)."""
    principal = request.get(PRINCIPAL)
    return principal if isinstance(principal, Principal) else None


def check_single_read(request: web.Request) -> None:
    """A read by customer_id takes no list parameter (but the projection): refused rather than
    silently ignored."""
    for name in request.query:
        if name in LIST_PARAMS and name not in PROJECTION:
            raise ValidationFailed(name, "is a list parameter; drop customer_id to list")
        if len(request.query.getall(name)) > 1:
            raise ValidationFailed(name, "is given more than once")


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
    deps = components_of(request).customer_list
    page = await customer_list.list_customers(deps, principal_of(request), raw, transport="rest")
    return json_body(page.to_json())
