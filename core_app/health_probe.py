"""The `HealthProbe` adapter (core_app/services/ports.py): liveness of the three dependencies,
probed concurrently with a deadline each, plus checks answered from the worker's own state."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiopg
from aiokafka import AIOKafkaClient
from redis.asyncio import Redis

from core_app import metrics
from core_app.domain.health import HealthReport


class DependencyProbe:
    def __init__(
        self,
        pool: aiopg.Pool,
        redis: Redis,
        kafka_options: Mapping[str, Any],
        timeout: float,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.kafka_options = kafka_options  # core_app/kafka_security.client_options
        self.timeout = timeout
        self._kafka: AIOKafkaClient | None = None
        # Checks answered from the worker's own state (no I/O), e.g. whether the broker lost data.
        self.local_checks: dict[str, Callable[[], str]] = {}
        # Local checks that also decide liveness (/live): only what a restart of this worker can
        # cure, e.g. a stalled partition; never a shared dependency (docs/decisions.md D17, D227).
        self.liveness_checks: dict[str, Callable[[], str]] = {}

    async def close(self) -> None:
        if self._kafka is not None:
            await self._kafka.close()

    async def check(self) -> HealthReport:
        probes: dict[str, Callable[[], Awaitable[object]]] = {
            "postgres": self._postgres,
            "redis": self.redis.ping,
            "kafka": self._kafka_metadata,
        }
        results = dict(await asyncio.gather(*(self._run(name, p) for name, p in probes.items())))
        for name, local_check in self.local_checks.items():
            results[name] = local_check()
            metrics.dependency_up.labels(name).set(1 if results[name] == "UP" else 0)
        results.update(self.check_liveness().checks)  # these export gauges of their own
        return HealthReport(results)

    def check_liveness(self) -> HealthReport:
        """The liveness checks alone (no I/O)."""
        return HealthReport({name: check() for name, check in self.liveness_checks.items()})

    async def _run(self, name: str, probe: Callable[[], Awaitable[object]]) -> tuple[str, str]:
        try:
            await asyncio.wait_for(probe(), self.timeout)
        except Exception as exc:
            metrics.dependency_up.labels(name).set(0)
            return name, f"DOWN: {type(exc).__name__}: {exc}".strip()[:200]
        metrics.dependency_up.labels(name).set(1)
        return name, "UP"

    async def _postgres(self) -> None:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT 1")
            await cur.fetchone()

    async def _kafka_metadata(self) -> None:
        if self._kafka is None:
            client = AIOKafkaClient(**self.kafka_options, client_id="core-health")
            await client.bootstrap()
            self._kafka = client
        await self._kafka.fetch_all_metadata()
