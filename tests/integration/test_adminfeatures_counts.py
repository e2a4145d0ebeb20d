"""Segment counts from AdminFeatures (a fake grpclib server speaking adminfeatures.v1): its counts
when it answers, the local counts when it is down or slower than the deadline, and an open circuit
breaker that stops calling it after repeated failures; the settings view of a worker configured with
ADMINFEATURES_GRPC_TARGET carries them, and degrades to the local counts when the server is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from grpclib.server import Server, Stream

from core_app.adminfeatures import AdminFeaturesClient, calls
from core_app.adminfeatures.generated.adminfeatures.v1 import adminfeatures_pb2 as pb
from core_app.adminfeatures.generated.adminfeatures.v1.adminfeatures_grpc import AdminFeaturesServiceBase
from core_app.customer_adapters import PgCustomerStore
from core_app.security import Principal, use_principal
from core_app.security.principal import VIEW, current_principal
from core_app.services.segments import SegmentDeps, segment_counts
from core_app.settings import Settings
from tests.support.customer_lists import THRESHOLDS, insert_rows, random_rows, set_thresholds
from tests.support.events import new_merchant
from tests.support.fake_adminfeatures import CHAMPIONS, fake_adminfeatures_process
from tests.support.processes import free_port, running_tansu, start_worker, stop_process, wait_ready
from tests.support.security import open_layer


class FakeAdminFeatures(AdminFeaturesServiceBase):
    def __init__(self) -> None:
        self.delay = 0.0
        self.requests: list[str] = []

    async def GetRFMSegmentCounts(
        self, stream: Stream[pb.GetRFMSegmentCountsRequest, pb.GetRFMSegmentCountsResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None
        self.requests.append(request.merchant_id)
        await asyncio.sleep(self.delay)
        reply = pb.GetRFMSegmentCountsResponse()
        reply.segments.extend([pb.RFMSegmentCount(segment="champions", customers=41)])
        await stream.send_message(reply)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeAdminFeatures, Server, int]]:
    service = FakeAdminFeatures()
    server = Server([service])
    port = free_port()
    await server.start("127.0.0.1", port)
    yield service, server, port
    server.close()
    await server.wait_closed()


def outcome(name: str) -> float:
    return calls.labels(name)._value.get()


async def test_counts_come_from_adminfeatures_and_degrade_to_local(
    settings: Settings, fake: tuple[FakeAdminFeatures, Server, int]
) -> None:
    service, server, port = fake
    merchant = new_merchant(settings)
    insert_rows(settings, merchant, random_rows(9, seed=9))
    set_thresholds(settings, merchant, THRESHOLDS)
    client = AdminFeaturesClient(f"127.0.0.1:{port}", timeout=0.3, threshold=3, reset_after=60)
    async with open_layer(settings) as layer:
        pool = layer.api_keys.pool
        deps = SegmentDeps(PgCustomerStore(pool), layer, client)
        try:
            with use_principal(Principal("ops", merchant, frozenset({VIEW}), "jwt")):
                remote = await segment_counts(deps, current_principal.get(), merchant)
                assert remote["source"] == "adminfeatures" and remote["total"] == 41
                assert service.requests == [merchant]

                service.delay = 1.0  # slower than the deadline: local counts, in about the deadline
                started = time.monotonic()
                slow = await segment_counts(deps, current_principal.get(), merchant)
                assert slow["source"] == "local" and slow["total"] == 9
                assert time.monotonic() - started < 0.9

                server.close()
                await server.wait_closed()
                for _ in range(3):  # down: each call fails fast and counts towards the breaker
                    assert (await segment_counts(deps, current_principal.get(), merchant))[
                        "source"
                    ] == "local"
                refused_before = outcome("open")
                asked = len(service.requests)
                assert (await segment_counts(deps, current_principal.get(), merchant))["source"] == "local"
                assert outcome("open") == refused_before + 1  # the breaker is open: not even tried
                assert len(service.requests) == asked
        finally:
            client.close()


@pytest.mark.timeout(300)
async def test_the_settings_view_of_a_worker_carries_adminfeatures_counts_then_local(
    settings: Settings, worker_env: dict[str, str], data_root: Path
) -> None:
    merchant = new_merchant(settings)
    insert_rows(settings, merchant, random_rows(7, seed=7))
    set_thresholds(settings, merchant, THRESHOLDS)
    with running_tansu(data_root / "tansu-adminfeatures.log") as broker, fake_adminfeatures_process() as fake:
        process, port = fake
        env = worker_env | {
            "KAFKA_BROKER": broker,
            "DATA_DIR": str(data_root / "adminfeatures-data"),
            "ADMINFEATURES_GRPC_TARGET": f"127.0.0.1:{port}",
        }
        worker = start_worker("worker-adminfeatures", env)
        try:
            await wait_ready(worker)
            url = f"{worker.url}/core/v1/settings"
            async with aiohttp.ClientSession() as http:
                async with http.get(url, params={"merchant_id": merchant}) as response:
                    assert response.status == 200, await response.text()
                    view = await response.json()
                assert view["rfm_thresholds"] == THRESHOLDS
                assert (view["segment_counts"]["source"], view["segment_counts"]["total"]) == (
                    "adminfeatures",
                    CHAMPIONS,
                )

                process.kill()  # AdminFeatures down: the same view, with the local counts
                process.wait()
                async with http.get(url, params={"merchant_id": merchant}) as response:
                    assert response.status == 200, await response.text()
                    view = await response.json()
                assert view["rfm_thresholds"] == THRESHOLDS
                assert (view["segment_counts"]["source"], view["segment_counts"]["total"]) == ("local", 7)
        finally:
            stop_process(worker.process)
