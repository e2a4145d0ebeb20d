"""The HTTP (aiohttp) and gRPC (grpclib) servers as mode services owned by the Faust app.

They start before table recovery, so `/health` answers during a long recovery while `/ready` says
not yet (Faust's own web server would only start after recovery).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from grpclib.health.service import Health
from grpclib.reflection.service import ServerReflection
from grpclib.server import Server
from mode import Service

from core_app import tracing
from core_app.rpc.request_metrics import instrument
from core_app.security.grpc_listener import install_grpc_security
from core_app.security.layer import SecurityLayer
from core_app.settings import Settings

log = logging.getLogger(__name__)


class HttpServer(Service):
    def __init__(self, settings: Settings, web_app: web.Application, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.web_app = web_app
        self._runner: web.AppRunner | None = None

    async def on_start(self) -> None:
        self._runner = web.AppRunner(self.web_app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        log.info("http listening", extra={"port": self.settings.http_port})

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class GrpcServer(Service):
    def __init__(
        self,
        settings: Settings,
        handlers: list[Any],
        security: Callable[[], SecurityLayer],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        services = [*handlers, Health()]
        self.server = Server(ServerReflection.extend(services))
        if tracing.enabled():
            tracing.instrument_grpc(self.server)  # first: a span per call, refused ones included
        instrument(self.server)  # latency per method, x-core-source trailer
        install_grpc_security(self.server, security)  # every RPC but health and reflection

    async def on_start(self) -> None:
        await self.server.start(self.settings.grpc_host, self.settings.grpc_port)
        log.info("grpc listening", extra={"port": self.settings.grpc_port})

    async def on_stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()
