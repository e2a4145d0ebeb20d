"""Consul service registration through the local agent's HTTP API (when CONSUL_HTTP_ADDR is set).

Each worker registers as `core-{WORKER_ID}` (name `core`, tags core,customers,settings) with an HTTP
check on /health every 10 s (timeout 2 s), and deregisters on shutdown (SIGTERM), so Consul stops
sending clients to it before it leaves the consumer group. A Consul agent that is not up yet is
retried in the background: registration never blocks or fails the worker's start.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from core_app.settings import Settings

log = logging.getLogger(__name__)

SERVICE_TAGS = ("core", "customers", "settings")
RETRY_MAX_SECONDS = 30.0


def service_id(settings: Settings) -> str:
    return f"core-{settings.worker_id}"


def registration(settings: Settings) -> dict[str, Any]:
    """The body of `PUT /v1/agent/service/register` for this worker."""
    host = urlsplit(settings.web_url).hostname or "127.0.0.1"
    return {
        "ID": service_id(settings),
        "Name": "core",  # the plan's SERVICE_NAME=core, whatever the Faust app id
        "Tags": list(SERVICE_TAGS),
        "Address": host,
        "Port": settings.http_port,
        "Meta": {
            "worker_id": settings.worker_id,
            "http_port": str(settings.http_port),
            "grpc_port": str(settings.grpc_port),
        },
        "TaggedAddresses": {
            "lan": {"Address": host, "Port": settings.http_port},
            "grpc": {"Address": host, "Port": settings.grpc_port},
        },
        "Check": {
            "CheckID": f"{service_id(settings)}-health",
            "Name": "core /health",
            "HTTP": f"http://{host}:{settings.http_port}/health",
            "Method": "GET",
            "Interval": settings.consul_check_interval,
            "Timeout": settings.consul_check_timeout,
            "DeregisterCriticalServiceAfter": settings.consul_deregister_after,
        },
    }


class ConsulRegistration:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base = settings.consul_http_addr.rstrip("/")
        if "://" not in self.base:
            self.base = f"http://{self.base}"  # CONSUL_HTTP_ADDR may be host:port, as for the consul CLI
        token = settings.consul_http_token.get_secret_value()
        self._headers = {"X-Consul-Token": token} if token else {}
        self._task: asyncio.Task[None] | None = None
        self.registered = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._register_until_done())

    async def _register_until_done(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._put("/v1/agent/service/register", registration(self.settings))
                self.registered = True
                log.info("registered in consul", extra={"service_id": service_id(self.settings)})
                return
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("consul registration failed; retrying", extra={"error": str(exc), "in": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if not self.registered:
            return
        try:
            await self._put(f"/v1/agent/service/deregister/{service_id(self.settings)}", None)
            self.registered = False
            log.info("deregistered from consul", extra={"service_id": service_id(self.settings)})
        except (aiohttp.ClientError, TimeoutError) as exc:
            # DeregisterCriticalServiceAfter removes it once its check has failed for that long.
            log.warning("consul deregistration failed", extra={"error": str(exc)})

    async def _put(self, path: str, body: dict[str, Any] | None) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.health_timeout)
        async with (
            aiohttp.ClientSession(timeout=timeout, headers=self._headers) as http,
            http.put(f"{self.base}{path}", json=body) as response,
        ):
            if response.status != 200:
                text = await response.text()
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message=text[:200]
                )
