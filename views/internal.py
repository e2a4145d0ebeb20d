"""Internal routes between workers. Not for clients: the security layer must keep them cluster-only."""

from __future__ import annotations

from aiohttp import web

from core_app.domain.events import parse_uuid
from core_app.services.customers import local_view
from tables.settings import local_settings
from views.responses import json_body


async def owner_customer(request: web.Request) -> web.Response:
    """This worker's table value for a customer (no further routing, so no loops)."""
    merchant_id = parse_uuid(request.match_info["merchant_id"], "merchant_id")
    customer_id = parse_uuid(request.match_info["customer_id"], "customer_id")
    view = local_view(merchant_id, customer_id)
    if view is None:
        raise web.HTTPNotFound()
    return json_body(view)


async def owner_settings(request: web.Request) -> web.Response:
    merchant_id = parse_uuid(request.match_info["merchant_id"], "merchant_id")
    found = local_settings(merchant_id)
    if found is None:
        raise web.HTTPNotFound()
    return web.json_response(found)
