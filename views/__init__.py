"""aiohttp entrypoints: REST, GraphQL, the live-updates WebSocket, health/live/ready/metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_async.aio.web import server_stats

from core_app.components import Components
from views import (
    admin_dlq,
    customer_import,
    customer_timeline,
    customers,
    gdpr_exports,
    health,
    internal,
    live,
    program_settings,
    segments,
    updates,
)
from views.admin_page import admin_routes
from views.graphql import graphql_handler
from views.pipeline import build_app
from views.shopify import install_cleanup, shopify_routes
from views.wiring import COMPONENTS

ROUTES: list[tuple[str, str, object]] = [
    ("GET", "/health", health.health),
    ("GET", "/ready", health.ready),
    ("GET", "/live", health.live),
    ("GET", "/metrics", server_stats),
    ("GET", "/core/v1/customers", customers.get_customer),
    ("POST", "/core/v1/customers", customers.create_customer),
    ("GET", "/core/v1/customers/{customer_id}/timeline", customer_timeline.get_timeline),
    ("GET", "/core/v1/settings", program_settings.get_settings),
    ("POST", "/core/v1/settings", program_settings.update_settings),
    ("GET", "/core/v1/segments", segments.get_segments),
    ("GET", "/core/v1/imports", customer_import.get_imports),
    ("POST", "/core/v1/imports", customer_import.start_import),
    ("GET", "/core/v1/updates/stream", updates.updates_stream),  # WebSocket
    ("GET", "/core/v1/admin/dlq", admin_dlq.get_dead_letters),
    ("GET", "/core/v1/gdpr/exports/{export_id}", gdpr_exports.get_export),
    ("GET", "/internal/v1/customers/{merchant_id}/{customer_id}", internal.owner_customer),
    ("GET", "/internal/v1/settings/{merchant_id}", internal.owner_settings),
]


def build_web_app(components: Components | None = None) -> web.Application:
    # The pipeline authenticates every route but /health, /live, /ready, /metrics and the admin page's
    # static files (core_app/security/http.py), maps domain errors and observes latency (views/pipeline.py).
    routes = [*ROUTES, *admin_routes(), *shopify_routes(), ("*", "/graphql", graphql_handler())]
    web_app = build_app(routes, client_max_size=1024 * 1024)  # type: ignore[arg-type]
    if components is not None:  # transition (issue 16): becomes required
        web_app[COMPONENTS] = components
    live.install(web_app)  # closes live sockets on shutdown
    install_cleanup(web_app)  # the Shopify HTTP client
    return web_app
