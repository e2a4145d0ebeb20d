"""Internal routes between workers. Not for clients: the security layer must keep them cluster-only."""

from __future__ import annotations

from aiohttp import web

from core_app.app import app
from core_app.domain.customer import customer_key
from core_app.domain.events import parse_uuid
from core_app.recovery import wait_serving
from core_app.routing import partition_owner, same_worker, table_partition
from tables.customers import local_view
from tables.program_settings import local_settings
from views.responses import json_body
from views.wiring import components_of


async def owner_customer(request: web.Request) -> web.Response:
    """This worker's table value for a customer (no further routing, so no loops)."""
    merchant_id = parse_uuid(request.match_info["merchant_id"], "merchant_id")
    customer_id = parse_uuid(request.match_info["customer_id"], "customer_id")
    settings = components_of(request).settings
    partition = table_partition(app, "customers", customer_key(merchant_id, customer_id))
    owner = partition_owner(app, "customers", partition)
    # Only the active, recovered holder answers; the caller falls back to Redis/PostgreSQL (D112).
    if owner is not None and not same_worker(owner, settings.web_url):
        raise web.HTTPServiceUnavailable(reason="not the owner")
    if not await wait_serving(app, settings.peer_timeout * 0.8):
        raise web.HTTPServiceUnavailable(reason="recovering")
    view = local_view(merchant_id, customer_id, partition, active=owner is not None)
    if view is None:
        raise web.HTTPNotFound()
    return json_body(view)


async def owner_settings(request: web.Request) -> web.Response:
    merchant_id = parse_uuid(request.match_info["merchant_id"], "merchant_id")
    found = local_settings(merchant_id)
    if found is None:
        raise web.HTTPNotFound()
    return web.json_response(found)
