"""The composition root: builds every collaborator of one worker once and hands it out explicitly.

`build()` returns the Faust app with its agents, servers and services wired to one `Components`
(core_app/components.py). Agents read `app.components` at their edge, views read the components
from their aiohttp app (views/wiring.py), gRPC handlers and services take them in their constructor.
Nothing below this module reaches for a module-level getter. Importing this module registers the
agents and tables on the app.
"""

from __future__ import annotations

from agents.customer_commands import customer_commands_agent
from agents.customer_import import import_jobs_agent
from agents.customer_import import runner as import_runner
from agents.customer_import_updates import import_updates_agent
from agents.gdpr_request_created import gdpr_request_created_agent
from agents.gdpr_watch import GdprRequestWatch
from agents.parking import ParkedEvents
from agents.points_updated import points_updated_agent
from agents.program_settings_commands import settings_commands_agent
from agents.referral_created import referral_created_agent
from agents.rekeyed import rekeyed_agent
from agents.rfm_updated import rfm_updated_agent
from agents.shopify_webhooks import shopify_webhooks_agent
from agents.table_purges import table_purges_agent
from core_app import consumer_metrics
from core_app.app import CoreApp, app
from core_app.components import Components, NotOpen
from core_app.fanout.service import FanoutService
from core_app.malloc_tuning import MallocTrim
from core_app.ops.service import OpsService
from core_app.rpc.core_service import CoreService
from core_app.servers import GrpcServer, HttpServer
from core_app.settings import Settings
from core_app.sink import PostgresSink
from core_app.sink_sql import SPECS
from tables.customer_import_logs import import_logs_table
from tables.customers import customers_table
from tables.program_settings import settings_table
from views import build_web_app

__all__ = ["AGENTS", "TABLES", "Components", "NotOpen", "app", "build"]

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
    table_purges_agent,
)
TABLES = (customers_table, settings_table, import_logs_table)


def build(settings: Settings | None = None) -> CoreApp:
    """The worker's Faust app, wired once (a second call returns it as it is). The app was created
    from the process's settings when core_app.app was imported; `settings` is accepted for the
    callers that pass them and must be those."""
    if not app.extra_services:
        components = app.components = Components(settings or app.core_settings)
        in_worker = components.settings.sink_in_worker  # else `core sink` runs it
        sink = [_sink(components)] if in_worker else []
        app.extra_services = [
            *sink,
            FanoutService(components),  # before the HTTP server: its clients need the hub
            HttpServer(components.settings, build_web_app(components)),
            GrpcServer(
                components.settings, handlers=[CoreService(components)], security=lambda: components.security
            ),
            import_runner,
            ParkedEvents(components),  # events for customers that did not exist yet (D103)
            GdprRequestWatch(components),  # open, overdue and oldest GDPR requests (D160)
            MallocTrim(components.settings),  # free memory back to the OS between chunks (D258)
            OpsService(components.settings),  # last: started after the servers, stopped (deregistered) first
        ]
        consumer_metrics.register(app)  # core_consumer_lag, core_worker_ready on /metrics
    return app


def _sink(components: Components) -> PostgresSink:
    return PostgresSink(
        components.settings,
        SPECS,
        resources=components.sink_resources,
        dead_letters=components.dead_letters,
    )
