"""REST `/core/v1/customers`."""

from __future__ import annotations

from aiohttp import web

from core_app.domain.errors import ValidationFailed
from core_app.services import customers as service


def _required(request: web.Request, name: str) -> str:
    value = request.query.get(name)
    if not value:
        raise ValidationFailed(name, "is required")
    return value


async def get_customer(request: web.Request) -> web.Response:
    customer = await service.get_customer(
        _required(request, "merchant_id"), _required(request, "customer_id")
    )
    return web.json_response(customer)


async def create_customer(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        raise ValidationFailed("body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise ValidationFailed("body", "must be a JSON object")
    customer = await service.create_customer(body.get("merchant_id"), body.get("email"), body.get("metadata"))
    return web.json_response(customer, status=201)
