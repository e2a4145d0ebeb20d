"""Client of AdminFeatures `GetRFMSegmentCounts`: a deadline per call, a circuit breaker, and `None`
when either says no, so the caller degrades to the local counts (docs/decisions.md D135)."""

from __future__ import annotations

import logging

from grpclib import GRPCError
from grpclib.client import Channel
from prometheus_client import Counter
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from core_app.adminfeatures.generated.adminfeatures.v1 import adminfeatures_pb2 as pb
from core_app.adminfeatures.generated.adminfeatures.v1.adminfeatures_grpc import AdminFeaturesServiceStub
from core_app.security.remote import split_target

log = logging.getLogger(__name__)

calls = Counter(
    "core_adminfeatures_calls_total",
    "AdminFeatures GetRFMSegmentCounts calls by outcome (ok, error, open: refused by the breaker)",
    ["outcome"],
)
BREAKER = "adminfeatures"


class AdminFeaturesClient:
    def __init__(self, target: str, *, timeout: float, threshold: int = 5, reset_after: float = 30.0) -> None:
        self.host, self.port = split_target(target)
        self.timeout = timeout
        self._channel: Channel | None = None
        # Opens after `threshold` failures in a row; one trial call after `reset_after` seconds.
        self._breakers = AsyncCircuitBreakerFactory(default_threshold=threshold, default_ttl=reset_after)

    def channel(self) -> Channel:
        if self._channel is None:
            self._channel = Channel(self.host, self.port)
        return self._channel

    async def segment_counts(self, merchant_id: str) -> dict[str, int] | None:
        """AdminFeatures' counts, or None when it failed, timed out or the breaker is open."""
        stub = AdminFeaturesServiceStub(self.channel())
        request = pb.GetRFMSegmentCountsRequest(merchant_id=merchant_id)
        try:
            async with await self._breakers.get_breaker(BREAKER):
                reply = await stub.GetRFMSegmentCounts(request, timeout=self.timeout)
        except OpenedState:
            calls.labels("open").inc()
            return None
        except (GRPCError, OSError, TimeoutError) as exc:
            calls.labels("error").inc()
            log.warning("AdminFeatures unavailable; local segment counts", extra={"error": repr(exc)})
            return None
        calls.labels("ok").inc()
        return {row.segment: int(row.customers) for row in reply.segments}

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


_clients: dict[tuple[str, float], AdminFeaturesClient] = {}


def adminfeatures_for(target: str | None, timeout: float) -> AdminFeaturesClient | None:
    """The worker's client for ADMINFEATURES_GRPC_TARGET (one per target), or None when unset."""
    if not target:
        return None
    client = _clients.get((target, timeout))
    if client is None:
        client = _clients[(target, timeout)] = AdminFeaturesClient(target, timeout=timeout)
    return client
