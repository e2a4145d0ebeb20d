"""Fake servers for what cannot run here, speaking the real protocols: a Consul agent's service API
and PostHog's capture endpoint. Plus a real Prometheus (Debian's binary) scraping a live worker."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from tests.support.processes import free_port, stop_process, wait_for_port


class FakeServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None
        self.arrived = asyncio.Event()

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class FakeConsul(FakeServer):
    """`PUT /v1/agent/service/register` and `/v1/agent/service/deregister/{id}`; the first
    registration is refused with a 500, as an agent that is still starting would."""

    def __init__(self) -> None:
        super().__init__()
        self.services: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, Any]] = []
        self.refuse_next = 1

    def routes(self, app: web.Application) -> None:
        app.router.add_put("/v1/agent/service/register", self._register)
        app.router.add_put("/v1/agent/service/deregister/{service_id}", self._deregister)

    async def _register(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(("register", request.headers.get("Content-Type", ""), body))
        if self.refuse_next:
            self.refuse_next -= 1
            return web.Response(status=500, text="agent not ready")
        missing = {"ID", "Name", "Port", "Check"} - set(body)
        if missing:
            return web.Response(status=400, text=f"missing {sorted(missing)}")
        self.services[body["ID"]] = body
        self.arrived.set()
        return web.Response(status=200)

    async def _deregister(self, request: web.Request) -> web.Response:
        service_id = request.match_info["service_id"]
        self.calls.append(("deregister", service_id, None))
        if self.services.pop(service_id, None) is None:
            return web.Response(status=404, text=f"Unknown service ID {service_id!r}")
        return web.Response(status=200)


class FakePostHog(FakeServer):
    """PostHog's batch capture: any POST with `{"api_key", "batch": [...]}`, gzip or not."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[bytes] = []
        self.events: list[dict[str, Any]] = []
        self.paths: list[str] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{tail:.*}", self._capture)

    async def _capture(self, request: web.Request) -> web.Response:
        data = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        self.raw.append(data)
        self.paths.append(request.path)
        body = json.loads(data)
        self.events.extend(body.get("batch", [body]))
        self.arrived.set()
        return web.json_response({"status": 1})


class RunningPrometheus:
    """A real Prometheus scraping `targets` every second and evaluating `rule_files` every second."""

    def __init__(self, workdir: Path, targets: list[str], rule_files: list[Path]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{"job_name": "core", "static_configs": [{"targets": targets}]}],
        }
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus missing: apt-get install prometheus (.ci/run does)"
        log = open(self.workdir / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=10)

    async def api(self, path: str, **params: str) -> Any:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/api/v1/{path}", params=params) as r:
            body = await r.json()
        assert body["status"] == "success", body
        return body["data"]


class FakeOtlpCollector(FakeServer):
    """OTLP/HTTP traces (`POST /v1/traces`, protobuf `ExportTraceServiceRequest`): keeps each span as
    (trace id, span name, kind, service.instance.id of its resource), and the trace ids each links to
    in `links`, under the same tuple."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[str, str, int, str]] = []
        self.links: dict[tuple[str, str, int, str], set[str]] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/traces", self._export)

    async def _export(self, request: web.Request) -> web.Response:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        data = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        export = trace_service_pb2.ExportTraceServiceRequest.FromString(data)
        for resource_spans in export.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            instance = attributes.get("service.instance.id", "")
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    kept = (span.trace_id.hex(), span.name, span.kind, instance)
                    self.spans.append(kept)
                    if span.links:
                        self.links.setdefault(kept, set()).update(link.trace_id.hex() for link in span.links)
        body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")
