"""Segment counts from AdminFeatures (a fake grpclib server speaking adminfeatures.v1): its counts
when it answers, the local counts when it is down or slower than the deadline, and an open circuit
breaker that stops calling it after repeated failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from grpclib.server import Server, Stream

from core_app.adminfeatures import AdminFeaturesClient, calls
from core_app.rpc.generated.adminfeatures.v1 import adminfeatures_pb2 as pb
from core_app.rpc.generated.adminfeatures.v1.adminfeatures_grpc import AdminFeaturesServiceBase
from core_app.security import Principal, set_security, use_principal
from core_app.security.principal import VIEW
from core_app.services.segments import segment_counts
from core_app.settings import Settings
from tests.helpers import free_port
from tests.integration.events import new_merchant
from tests.integration.list_support import THRESHOLDS, insert_rows, random_rows, set_thresholds
from tests.integration.security_support import open_layer


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
        set_security(layer)
        pool = layer.api_keys.pool
        try:
            with use_principal(Principal("ops", merchant, frozenset({VIEW}), "jwt")):
                remote = await segment_counts(pool, merchant, client)
                assert remote["source"] == "adminfeatures" and remote["total"] == 41
                assert service.requests == [merchant]

                service.delay = 1.0  # slower than the deadline: local counts, in about the deadline
                started = time.monotonic()
                slow = await segment_counts(pool, merchant, client)
                assert slow["source"] == "local" and slow["total"] == 9
                assert time.monotonic() - started < 0.9

                server.close()
                await server.wait_closed()
                for _ in range(3):  # down: each call fails fast and counts towards the breaker
                    assert (await segment_counts(pool, merchant, client))["source"] == "local"
                refused_before = outcome("open")
                asked = len(service.requests)
                assert (await segment_counts(pool, merchant, client))["source"] == "local"
                assert outcome("open") == refused_before + 1  # the breaker is open: not even tried
                assert len(service.requests) == asked
        finally:
            set_security(None)
            client.close()
