"""Liveness of the three dependencies, probed concurrently with a deadline each."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiopg
from aiokafka import AIOKafkaClient
from redis.asyncio import Redis

from core_app import metrics


@dataclass(frozen=True)
class HealthReport:
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        return all(state == "UP" for state in self.checks.values())

    @property
    def down(self) -> list[str]:
        return sorted(name for name, state in self.checks.items() if state != "UP")

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"status": "UP" if self.up else "DOWN", "checks": self.checks}
        if not self.up:
            body["down"] = self.down
        return body


class HealthProbe:
    def __init__(
        self,
        pool: aiopg.Pool,
        redis: Redis,
        kafka_bootstrap: list[str],
        timeout: float,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.kafka_bootstrap = kafka_bootstrap
        self.timeout = timeout
        self._kafka: AIOKafkaClient | None = None
        # Checks answered from the worker's own state (no I/O), e.g. whether the broker lost data.
        self.local_checks: dict[str, Callable[[], str]] = {}

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
        return HealthReport(results)

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
            client = AIOKafkaClient(bootstrap_servers=self.kafka_bootstrap, client_id="core-health")
            await client.bootstrap()
            self._kafka = client
        await self._kafka.fetch_all_metadata()
