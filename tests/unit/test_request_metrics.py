"""Request latency per transport and the per-request read-source signal, without a worker."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.server import Server, Stream
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from core_app import metrics, read_source
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceBase, CoreServiceStub
from core_app.rpc.request_metrics import instrument
from core_app.security.layer import SecurityLayer
from core_app.settings import Settings
from tests.support.processes import free_port
from views.pipeline import build_app


def observed(transport: str, route: str, status: str) -> float:
    labels = {"transport": transport, "route": route, "status": status}
    return REGISTRY.get_sample_value("core_request_duration_seconds_count", labels) or 0.0


async def reader(request: web.Request) -> web.Response:
    source = request.match_info["source"]
    if source != "none":
        await asyncio.sleep(0.01 if source == "redis" else 0)  # interleave concurrent requests
        read_source.record(source)
    return web.json_response({})


async def failing(request: web.Request) -> web.Response:
    raise web.HTTPForbidden()


async def rest_client() -> TestClient:
    # Authentication off: the pipeline's security half lets every request through as DISABLED, and
    # a layer with authentication off never touches its Redis client or pool.
    layer = SecurityLayer(Settings(auth_enabled=False), Redis(), None)  # type: ignore[arg-type]
    app = build_app([("GET", "/read/{source}", reader), ("GET", "/forbidden", failing)], lambda: layer)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_rest_latency_by_route_template_and_a_source_header_per_request() -> None:
    client = await rest_client()
    try:
        route = "GET /read/{source}"
        before = observed("rest", route, "200")
        unmatched = observed("rest", "unmatched", "404")
        not_allowed = observed("rest", "unmatched", "405")
        forbidden = observed("rest", "GET /forbidden", "403")

        # Concurrent requests each see only their own source; a later request on a reused
        # keep-alive connection that reads nothing gets no header.
        answers = await asyncio.gather(*(client.get(f"/read/{s}") for s in ("redis", "table", "postgres")))
        assert [a.headers.get("X-Core-Source") for a in answers] == ["redis", "table", "postgres"]
        for answer in answers:
            answer.release()
        quiet = await client.get("/read/none")
        assert "X-Core-Source" not in quiet.headers

        assert (await client.get(f"/no/such/{'x' * 20}")).status == 404
        wrong_method = await client.post("/forbidden")  # the catch-all answers as aiohttp would
        assert (wrong_method.status, wrong_method.headers["Allow"]) == (405, "GET")
        assert observed("rest", "unmatched", "405") == not_allowed + 1
        assert (await client.get("/forbidden")).status == 403
        assert observed("rest", route, "200") == before + 4
        assert observed("rest", "unmatched", "404") == unmatched + 1
        assert observed("rest", "GET /forbidden", "403") == forbidden + 1
    finally:
        await client.close()


def test_cache_hit_rate_and_counters() -> None:
    hits = REGISTRY.get_sample_value("core_cache_hits_total", {"cache": "customer"}) or 0.0
    misses = REGISTRY.get_sample_value("core_cache_misses_total", {"cache": "customer"}) or 0.0
    metrics.cache_lookup("customer", hit=True)
    metrics.cache_lookup("customer", hit=True)
    metrics.cache_lookup("customer", hit=False)
    assert REGISTRY.get_sample_value("core_cache_hits_total", {"cache": "customer"}) == hits + 2
    assert REGISTRY.get_sample_value("core_cache_misses_total", {"cache": "customer"}) == misses + 1
    total_hits, total_misses = metrics._cache_totals
    rate = REGISTRY.get_sample_value("redis_cache_hit_rate")
    assert rate == total_hits / (total_hits + total_misses)


class ConstantRFM(CoreServiceBase):
    async def GetCustomerRFM(
        self, stream: Stream[pb.GetCustomerRFMRequest, pb.GetCustomerRFMResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None
        if request.customer_id != "none":
            read_source.record(request.customer_id)
        await stream.send_message(pb.GetCustomerRFMResponse())

    async def GetCustomer(self, stream: Stream) -> None:
        raise GRPCError(Status.UNIMPLEMENTED)

    CreateCustomer = UpdateCustomer = UpdateProgramSettings = ImportCustomers = ListCustomers = (
        GetSegmentCounts
    ) = UnsealEmail = GetCustomer


async def test_grpc_latency_by_method_and_a_source_trailer_per_call() -> None:
    server = Server([ConstantRFM()])
    instrument(server)
    port = free_port()
    await server.start("127.0.0.1", port)
    channel = Channel("127.0.0.1", port)
    method = "/core.v1.CoreService/GetCustomerRFM"
    before = observed("grpc", method, "OK")
    unimplemented = observed("grpc", "/core.v1.CoreService/GetCustomer", "UNIMPLEMENTED")

    async def call(source: str) -> str | None:
        async with CoreServiceStub(channel).GetCustomerRFM.open() as stream:
            await stream.send_message(pb.GetCustomerRFMRequest(customer_id=source), end=True)
            await stream.recv_message()
            await stream.recv_trailing_metadata()
        assert stream.trailing_metadata is not None
        return stream.trailing_metadata.get("x-core-source")

    try:
        assert await asyncio.gather(call("redis"), call("postgres"), call("none")) == [
            "redis",
            "postgres",
            None,
        ]
        assert observed("grpc", method, "OK") == before + 3
        with pytest.raises(GRPCError):
            await CoreServiceStub(channel).GetCustomer(pb.GetCustomerRequest())
        assert observed("grpc", "/core.v1.CoreService/GetCustomer", "UNIMPLEMENTED") == unimplemented + 1
    finally:
        channel.close()
        server.close()
        await server.wait_closed()
