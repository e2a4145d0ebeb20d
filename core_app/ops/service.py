"""The worker's operations hooks as a mode service: started after the HTTP and gRPC servers and
stopped first on SIGTERM (mode stops children in reverse order), so Consul deregisters the worker
before the servers close."""

from __future__ import annotations

from typing import Any

from mode import Service

from core_app.ops import product_events
from core_app.ops.consul import ConsulRegistration
from core_app.settings import Settings
from core_app.tracing import shutdown_tracing


class OpsService(Service):
    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.consul = ConsulRegistration(settings) if settings.consul_http_addr else None

    async def on_start(self) -> None:
        product_events.configure(self.settings)
        if self.consul is not None:
            self.consul.start()

    async def on_stop(self) -> None:
        if self.consul is not None:
            await self.consul.stop()
        product_events.shutdown()
        shutdown_tracing()
