"""Outermost aiohttp middleware: request latency per route template, and the read-source header.

Observes `core_request_duration_seconds{transport="rest"|"graphql", route="GET /core/v1/customers",
status="200"}`. Unmatched paths share one `route="unmatched"` series, so label cardinality stays
bounded whatever clients send. WebSocket upgrades (GraphQL subscriptions, the update stream) are
connections, not requests, and are not observed.

Each request gets its own read-source holder (core_app.read_source); a response whose request read
a customer or settings carries `X-Core-Source` (`table`, `owner`, `redis` or `postgres`).
"""

from __future__ import annotations

import time

from aiohttp import web

from core_app import metrics, read_source
from views.errors import Handler

GRAPHQL_PATH = "/graphql"


def _route(request: web.Request) -> tuple[str, str]:
    """(transport, route label) of a request, from its matched route template."""
    resource = request.match_info.route.resource
    if resource is None:
        return "rest", "unmatched"
    path = resource.canonical
    return ("graphql" if path == GRAPHQL_PATH else "rest"), f"{request.method} {path}"


@web.middleware
async def request_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    token = read_source.begin()
    status: int | None = None
    try:
        response = await handler(request)
        if isinstance(response, web.WebSocketResponse):
            return response
        status = response.status
        source = read_source.summary()
        if source is not None and not response.prepared:
            response.headers[read_source.HEADER] = source
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        read_source.end(token)
        if status is not None:
            transport, route = _route(request)
            metrics.observe_request(transport, route, str(status), time.perf_counter() - started)
