"""REST `/core/v1/customers`."""

from __future__ import annotations

from aiohttp import web

from core_app.domain.errors import ValidationFailed
from core_app.services import customers as service
from views.customer_list import check_single_read, list_customers
from views.errors import json_object
from views.responses import json_body


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
    customer = await service.get_customer(
        _required(request, "merchant_id"), _required(request, "customer_id")
    )
    return json_body(customer)


async def create_customer(request: web.Request) -> web.Response:
    body = await json_object(request)
    customer = await service.create_customer(body.get("merchant_id"), body.get("email"), body.get("metadata"))
    return web.json_response(customer, status=201)
