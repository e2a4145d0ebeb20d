"""Wires the Faust app: tables, agents, sink, HTTP and gRPC servers. Import this, not core_app.app."""

from __future__ import annotations

from agents.customer_commands import customer_commands_agent
from agents.gdpr_request_created import gdpr_request_created_agent
from agents.import_updates import import_updates_agent
from agents.imports import import_jobs_agent
from agents.imports import runner as import_runner
from agents.parking import ParkedEvents
from agents.points_updated import points_updated_agent
from agents.referral_created import referral_created_agent
from agents.rekeyed import rekeyed_agent
from agents.rfm_updated import rfm_updated_agent
from agents.settings_commands import settings_commands_agent
from agents.shopify_webhooks import shopify_webhooks_agent
from core_app import consumer_metrics
from core_app.app import CoreApp, app
from core_app.components import Components
from core_app.fanout.service import FanoutService
from core_app.ops.service import OpsService
from core_app.rpc.core_service import CoreService
from core_app.servers import GrpcServer, HttpServer
from core_app.sink import PostgresSink
from core_app.sink_sql import SPECS
from tables.customers import customers_table
from tables.import_logs import import_logs_table
from tables.settings import settings_table
from views import build_web_app

# Importing registers them on the app; listing them keeps the imports explicit.
AGENTS = (
    rfm_updated_agent,
    points_updated_agent,
    referral_created_agent,
    gdpr_request_created_agent,
    rekeyed_agent,
    customer_commands_agent,
    settings_commands_agent,
    import_jobs_agent,
    import_updates_agent,
    shopify_webhooks_agent,
)
TABLES = (customers_table, settings_table, import_logs_table)


def build() -> CoreApp:
    if not app.extra_services:
        settings = app.core_settings
        app.components = Components(settings)
        sink = [PostgresSink(settings, SPECS)] if settings.sink_in_worker else []  # else `core sink`
        app.extra_services = [
            *sink,
            FanoutService(settings),  # before the HTTP server: its clients need the hub
            HttpServer(settings, build_web_app(app.components)),
            GrpcServer(settings, handlers=[CoreService()]),
            import_runner,
            ParkedEvents(settings),  # events for customers that did not exist yet (D103)
            OpsService(settings),  # last: started after the servers, stopped (deregistered) first
        ]
        consumer_metrics.register(app)  # core_consumer_lag, core_worker_ready on /metrics
    return app
