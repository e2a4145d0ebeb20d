"""REST `/core/v1/customers`."""

from __future__ import annotations

from aiohttp import web

from core_app.domain.errors import ValidationFailed
from views.customer_list import check_single_read, list_customers, principal_of
from views.errors import json_object
from views.responses import json_body
from views.wiring import components_of


def _required(request: web.Request, name: str) -> str:
    value = request.query.get(name)
    if not value:
        raise ValidationFailed(name, "is required")
    return value


async def get_customer(request: web.Request) -> web.Response:
    if "customer_id" not in request.query:
        return await list_customers(request)  # list and search (views/customer_list.py)
    if len(request.query) > 2:
        check_single_read(request)
    customer = await components_of(request).customers.get(
        principal_of(request),
        _required(request, "merchant_id"),
        _required(request, "customer_id"),
        fields=request.query.get("fields"),
        include=request.query.get("include"),
    )
    return json_body(customer)


async def create_customer(request: web.Request) -> web.Response:
    body = await json_object(request)
    customers = components_of(request).customers
    customer = await customers.create(
        principal_of(request), body.get("merchant_id"), body.get("email"), body.get("metadata")
    )
    return web.json_response(customer, status=201)
