"""Where a PostgreSQL read goes: a streaming replica of CORE_DB_READ_URLS, or the primary (D220).

Only the reads that may trail the primary by a bounded moment come here: the customer read's
PostgreSQL fallback, the email readback and the list, search and segment-count pages
(core_app/customer_adapters.PgCustomerStore). Writes never do: they take the primary pool directly.

A replica serves a read while it is up and its replay lag is within CORE_DB_READ_MAX_LAG. The state
of each replica is checked at most every CORE_DB_READ_CHECK_INTERVAL seconds, on the read that finds
it stale: `pg_is_in_recovery()`, the WAL position it has replayed, and how long ago it replayed its
last transaction, against the primary's current WAL position. A replica that has replayed everything
has no lag, however long the primary has been idle. A replica that fails a check or a query is down
until its next check, and the read is retried on the primary.

Read-your-writes: after a write the writer records the primary's WAL position for the merchant
(`wrote`); that merchant's reads skip every replica that has not replayed up to it. Every read is
counted by target, and every read sent back to the primary by reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

import aiopg
import psycopg2
from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)
T = TypeVar("T")

reads_by_target = Counter(
    "core_db_reads_total", "PostgreSQL reads that may use a replica, by where they ran", ["target"]
)
primary_fallbacks = Counter(
    "core_db_read_fallbacks_total",
    "Replica-eligible reads sent to the primary: replica down, lagging, or behind the writer's own write",
    ["reason"],
)
replica_up = Gauge(
    "core_db_replica_up", "1 while the replica serves reads (up, lag within bound)", ["replica"]
)
replica_lag = Gauge("core_db_replica_lag_seconds", "Replay lag at the last check", ["replica"])

_STATE = """
SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,
       COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)::float8
"""
WRITER_MEMORY = 10_000  # merchants whose last write position is remembered (least recent dropped)


def parse_lsn(text: str | None) -> int:
    """A WAL position (`16/B374D848`) as a number; 0 for none."""
    if not text:
        return 0
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def replica_name(dsn: str) -> str:
    """host:port, for metrics and logs (never the password)."""
    parts = urlsplit(dsn)
    return f"{parts.hostname}:{parts.port or 5432}"


@dataclass
class Replica:
    dsn: str
    pool: aiopg.Pool | None = None
    checked_at: float = float("-inf")
    serving: bool = False
    replayed: int = 0  # WAL position replayed at the last check
    lag: float = 0.0
    reason: str = "down"  # why it does not serve, when it does not
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        return replica_name(self.dsn)


class ReadRouter:
    """Runs replica-eligible reads on a healthy replica (round robin), else on the primary."""

    def __init__(
        self,
        primary: aiopg.Pool,
        replica_dsns: list[str],
        open_pool: Callable[[str], Awaitable[aiopg.Pool]],
        max_lag: float,
        check_interval: float,
        check_timeout: float = 2.0,
    ) -> None:
        self.primary = primary
        self.replicas = [Replica(dsn) for dsn in replica_dsns]
        self.open_pool = open_pool
        self.max_lag = max_lag
        self.check_interval = check_interval
        self.check_timeout = check_timeout
        self._next = 0
        self._written: OrderedDict[str, int] = OrderedDict()  # merchant -> primary WAL position

    async def run(self, merchant_id: str, read: Callable[[aiopg.Pool], Awaitable[T]]) -> T:
        """`read(pool)` on a replica that may serve `merchant_id`'s read, or on the primary."""
        replica, reason = await self._choose(merchant_id)
        if replica is not None and replica.pool is not None:
            try:
                result = await read(replica.pool)
            except (psycopg2.OperationalError, psycopg2.InterfaceError, OSError) as exc:
                self._down(replica, exc)
                reason = "down"
            else:
                reads_by_target.labels("replica").inc()
                return result
        if reason is not None:
            primary_fallbacks.labels(reason).inc()
        reads_by_target.labels("primary").inc()
        return await read(self.primary)

    async def wrote(self, merchant_id: str) -> None:
        """Call after a committed write for `merchant_id`: its reads wait for replicas to replay it."""
        if not self.replicas:
            return
        async with self.primary.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT pg_current_wal_lsn()::text")
            (position,) = await cur.fetchone()
        self._written[merchant_id] = parse_lsn(position)
        self._written.move_to_end(merchant_id)
        while len(self._written) > WRITER_MEMORY:
            self._written.popitem(last=False)

    async def close(self) -> None:
        for replica in self.replicas:
            if replica.pool is not None:
                replica.pool.close()
                await replica.pool.wait_closed()
                replica.pool = None

    async def _choose(self, merchant_id: str) -> tuple[Replica | None, str | None]:
        """A replica to read from, or None and why not (None when no replica is configured)."""
        if not self.replicas:
            return None, None
        reasons = []
        for offset in range(len(self.replicas)):
            replica = self.replicas[(self._next + offset) % len(self.replicas)]
            await self._refresh(replica)
            if not replica.serving:
                reasons.append(replica.reason)
            elif replica.replayed < self._written.get(merchant_id, 0):
                reasons.append("read_your_writes")
            else:
                self._next = (self._next + offset + 1) % len(self.replicas)
                return replica, None
        return None, "read_your_writes" if "read_your_writes" in reasons else reasons[0]

    async def _refresh(self, replica: Replica) -> None:
        if time.monotonic() - replica.checked_at < self.check_interval:
            return
        async with replica.lock:
            if time.monotonic() - replica.checked_at < self.check_interval:
                return
            try:
                await asyncio.wait_for(self._check(replica), self.check_timeout)
            except (TimeoutError, psycopg2.Error, OSError) as exc:
                self._down(replica, exc)
            replica.checked_at = time.monotonic()
            replica_up.labels(replica.name).set(1 if replica.serving else 0)

    async def _check(self, replica: Replica) -> None:
        if replica.pool is None:
            replica.pool = await self.open_pool(replica.dsn)
        async with replica.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(_STATE)
            in_recovery, replayed, since_last_replay = await cur.fetchone()
        async with self.primary.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT pg_current_wal_lsn()::text")
            (current,) = await cur.fetchone()
        replica.replayed = parse_lsn(replayed)
        # Caught up: no lag, however long ago the last transaction was. Behind: lagging since then.
        replica.lag = 0.0 if replica.replayed >= parse_lsn(current) else float(since_last_replay)
        replica_lag.labels(replica.name).set(replica.lag)
        if not in_recovery:  # promoted, or pointed at a primary: not a replica of ours to trust
            replica.serving, replica.reason = False, "not_a_replica"
        elif replica.lag > self.max_lag:
            replica.serving, replica.reason = False, "lag"
        else:
            replica.serving, replica.reason = True, ""
        if not replica.serving:
            log.warning(
                "read replica not serving",
                extra={"replica": replica.name, "why": replica.reason, "lag": replica.lag},
            )

    def _down(self, replica: Replica, exc: BaseException) -> None:
        if replica.serving or replica.reason != "down":
            log.warning("read replica down", extra={"replica": replica.name, "error": repr(exc)[:200]})
        replica.serving, replica.reason = False, "down"
        replica.checked_at = time.monotonic()
        replica_up.labels(replica.name).set(0)
        if replica.pool is not None:  # its connections may all be dead: the next check opens anew
            replica.pool.terminate()
            replica.pool = None
