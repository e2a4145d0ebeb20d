"""Process-wide resources (PostgreSQL pool, Redis, event codec, health probe), opened once per worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import aiopg

from core_app import db
from core_app.events.codec import EventCodec
from core_app.health_probe import DependencyProbe
from core_app.kafka_security import client_options
from core_app.migrate import pending_migrations
from core_app.read_replicas import ReadRouter
from core_app.redis_client import RedisClient, open_redis
from core_app.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    pool: aiopg.Pool
    redis: RedisClient
    codec: EventCodec
    health: DependencyProbe
    migrations_applied: bool = False
    reads: ReadRouter | None = None  # where replica-eligible reads go (core_app/read_replicas.py)
    tables_recovered: bool = False
    # Set by the app: is every assigned partition recovered, and is the consumer group stable?
    partition_checks: Callable[[], dict[str, bool]] = field(default=lambda: {})
    # More readiness checks answered from the worker's own state, e.g. the partition watchdog's.
    ready_checks: dict[str, Callable[[], bool]] = field(default_factory=dict)
    _peers: aiohttp.ClientSession | None = None

    def peers(self) -> aiohttp.ClientSession:
        """HTTP client for internal calls to other workers (owner reads)."""
        if self._peers is None or self._peers.closed:
            timeout = aiohttp.ClientTimeout(total=self.settings.peer_timeout)
            # The internal routes want the shared token (core_app/security/http.py).
            token = {"X-Internal-Token": self.settings.internal_token.get_secret_value()}
            self._peers = aiohttp.ClientSession(timeout=timeout, headers=token)
        return self._peers

    def redis_key(self, key: str) -> str:
        return f"{self.settings.redis_key_prefix}{key}"

    async def is_ready(self) -> dict[str, bool]:
        if not self.migrations_applied:
            self.migrations_applied = not await asyncio.to_thread(pending_migrations, self.settings)
        try:
            redis_ok = bool(await asyncio.wait_for(self.redis.ping(), self.settings.health_timeout))
        except Exception:
            redis_ok = False
        return {
            "migrations": self.migrations_applied,
            "redis": redis_ok,
            "tables": self.tables_recovered,
            **self.partition_checks(),
            **{name: check() for name, check in self.ready_checks.items()},
        }

    async def close(self) -> None:
        if self._peers is not None:
            await self._peers.close()
        await self.health.close()
        if self.reads is not None:
            await self.reads.close()
        await self.redis.aclose()
        self.pool.close()
        await self.pool.wait_closed()


async def open_runtime(settings: Settings) -> Runtime:
    # minsize=0: a worker starts (and reports DOWN on /health) even while PostgreSQL is away.
    pool = await db.create_pool(settings, minsize=0)
    redis = open_redis(
        settings,
        socket_timeout=settings.health_timeout,
        socket_connect_timeout=settings.health_timeout,
    )
    codec = EventCodec(settings.schema_registry_url, settings.avro_dir)
    await codec.register_all()
    health = DependencyProbe(pool, redis, client_options(settings), settings.health_timeout)
    return Runtime(
        settings=settings,
        pool=pool,
        redis=redis,
        codec=codec,
        health=health,
        reads=read_router(settings, pool),
    )


def read_router(settings: Settings, primary: aiopg.Pool) -> ReadRouter:
    async def open_replica(dsn: str) -> aiopg.Pool:
        # Small and quick to give up: a replica that does not answer sends reads to the primary.
        return await db.create_pool(settings, dsn=dsn, minsize=0, timeout=settings.health_timeout)

    return ReadRouter(
        primary,
        settings.db_read_dsns,
        open_replica,
        max_lag=settings.core_db_read_max_lag,
        check_interval=settings.core_db_read_check_interval,
        check_timeout=settings.health_timeout,
    )
