"""Wires the Faust app: tables, agents, HTTP and gRPC servers. Import this, not core_app.app."""

from __future__ import annotations

import agents.rfm_updated  # noqa: F401  (registers the agent)
import tables.customers  # noqa: F401  (registers the table)
from core_app.app import CoreApp, app
from core_app.servers import GrpcServer, HttpServer
from views import build_web_app


def build() -> CoreApp:
    if not app.extra_servers:
        settings = app.core_settings
        app.extra_servers = [
            HttpServer(settings, build_web_app()),
            GrpcServer(settings, handlers=[]),
        ]
    return app
