"""The stalled-partition watchdog in a real worker on Tansu, PostgreSQL and Redis (D225-D228).

A stall is induced the way one happens in production: the `customers` table is locked (as by a
long migration or a stuck transaction), so the first-touch load of an unknown customer's event
blocks inside the rfm agent and its partition stops committing. The watchdog must report it on
/metrics, then fail /ready, then /health and /live; and clear once the lock goes. Idle partitions,
and a partition that commits slowly but steadily while records keep waiting, must never fire.
Thresholds are shortened to seconds; the worker has a broker and a database of its own, so the lock
stalls nobody else and no other test's events reach it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg2
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from core_app.events.codec import EventCodec
from core_app.migrate import migrate
from core_app.routing import key_partition
from core_app.settings import Settings
from core_app.topics import RFM_UPDATED
from tests.support.events import at, new_merchant, produce, rfm
from tests.support.processes import (
    WorkerProcess,
    eventually,
    running_tansu,
    start_worker,
    stop_process,
    wait_ready,
)

READY_AFTER = 5.0  # Faust commits every 2.8 s: a steady partition advances at least that often
HEALTH_AFTER = 8.0
PARTITIONS = 4
CHECK = "partitions_progressing"


@pytest.fixture(scope="module")
def watchdog_tansu(data_root: Path) -> Iterator[str]:
    with running_tansu(data_root / "tansu-watchdog.log") as url:
        yield url


@pytest.fixture(scope="module")
def watchdog_db(settings: Settings) -> Iterator[Settings]:
    own = settings.model_copy(update={"core_db_name": f"{settings.core_db_name}_watchdog"})
    migrate(own)
    yield own
    admin = psycopg2.connect(settings.model_copy(update={"core_db_name": "postgres"}).db_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{own.core_db_name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="module")
async def watched_worker(
    worker_env: dict[str, str], watchdog_tansu: str, watchdog_db: Settings, data_root: Path
) -> AsyncIterator[WorkerProcess]:
    env = worker_env | {
        "SERVICE_NAME": "core-watchdog-test",
        "KAFKA_BROKER": watchdog_tansu,
        "CORE_DB_NAME": watchdog_db.core_db_name,
        "DATA_DIR": str(data_root / "watchdog-data"),
        "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
        "PARTITION_STALL_READY_SECONDS": str(READY_AFTER),
        "PARTITION_STALL_HEALTH_SECONDS": str(HEALTH_AFTER),
    }
    worker = start_worker("worker-watchdog", env)
    try:
        await wait_ready(worker)
        yield worker
    finally:
        stop_process(worker.process)


@pytest.fixture(scope="module")
async def watchdog_producer(watchdog_tansu: str) -> AsyncIterator[AIOKafkaProducer]:
    kafka = AIOKafkaProducer(bootstrap_servers=watchdog_tansu.removeprefix("kafka://"))
    await kafka.start()
    yield kafka
    await kafka.stop()


class CustomersLock:
    """An ACCESS EXCLUSIVE lock on `customers`, taken and released from a thread (taking it waits
    for a transaction in progress, e.g. the sink's)."""

    def __init__(self, settings: Settings) -> None:
        self.conn = psycopg2.connect(settings.db_dsn)

    def _take(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")

    async def take(self) -> None:
        await asyncio.to_thread(self._take)

    async def release(self) -> None:
        await asyncio.to_thread(self.conn.rollback)

    def close(self) -> None:
        self.conn.rollback()
        self.conn.close()


@dataclass
class Observation:
    at: float
    stalled: dict[tuple[str, str], float]
    since: dict[tuple[str, str], float]
    committed: dict[tuple[str, str], float]
    statuses: dict[str, int] = field(default_factory=dict)
    bodies: dict[str, Any] = field(default_factory=dict)


async def observe(worker: WorkerProcess, probes: tuple[str, ...] = ()) -> Observation:
    """The probes' answers, then the gauges: scraped last, they are never older than the answers."""
    async with aiohttp.ClientSession() as http:
        seen = Observation(time.monotonic(), {}, {}, {})
        for path in probes:
            async with http.get(f"{worker.url}{path}") as response:
                seen.statuses[path], seen.bodies[path] = response.status, await response.json()
        async with http.get(f"{worker.url}/metrics") as response:
            text = await response.text()
        wanted = {
            "core_partition_stalled": seen.stalled,
            "core_partition_seconds_since_progress": seen.since,
            "core_consumer_committed_offset": seen.committed,
        }
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in wanted:
                    wanted[sample.name][(sample.labels["topic"], sample.labels["partition"])] = sample.value
    return seen


def partition_of(merchant_id: str, customer_id: str) -> tuple[str, str]:
    return RFM_UPDATED, str(key_partition(f"{merchant_id}:{customer_id}", PARTITIONS))


async def test_idle_partitions_and_a_slow_but_steady_one_never_fire(
    watched_worker: WorkerProcess,
    watchdog_db: Settings,
    watchdog_producer: AIOKafkaProducer,
    codec: EventCodec,
) -> None:
    """For longer than the health threshold: events keep arriving for a customer the worker must
    load from PostgreSQL, whose table is locked 1.5 s of every 1.8 s, so its partition holds records
    most of the time and commits only every few seconds. Every other partition is idle."""
    merchant, customer = new_merchant(watchdog_db), "00000000-0000-4000-8000-00000000c0de"
    slow = partition_of(merchant, customer)
    lock = CustomersLock(watchdog_db)
    stop = asyncio.Event()

    async def toggle_lock() -> None:
        while not stop.is_set():
            await lock.take()
            await asyncio.sleep(1.5)
            await lock.release()
            await asyncio.sleep(0.3)

    async def trickle() -> None:
        step = 0
        while not stop.is_set():
            step += 1
            await produce(watchdog_producer, codec, [rfm(merchant, customer, (1, 1, step % 5 + 1), at(step))])
            await asyncio.sleep(0.4)

    tasks = [asyncio.create_task(toggle_lock()), asyncio.create_task(trickle())]
    seen: list[Observation] = []
    try:
        deadline = time.monotonic() + HEALTH_AFTER + 2
        while time.monotonic() < deadline:
            seen.append(await observe(watched_worker, ("/ready",)))
            await asyncio.sleep(0.5)
        final = await observe(watched_worker, ("/ready", "/health", "/live"))
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        lock.close()
    assert all(o.statuses["/ready"] == 200 for o in seen), [o.bodies["/ready"] for o in seen]
    assert final.statuses == {"/ready": 200, "/health": 200, "/live": 200}, final.bodies
    assert all(value == 0 for o in seen for value in o.stalled.values())
    slow_since = [o.since[slow] for o in seen]
    assert max(slow_since) >= 1.0, f"the slow partition never waited with records: {slow_since}"
    assert max(slow_since) < READY_AFTER
    assert seen[-1].committed[slow] - seen[0].committed.get(slow, 0) >= 3  # it did progress
    idle = {key for o in seen for key in o.since if key != slow and key[0] == RFM_UPDATED}
    assert len(idle) == PARTITIONS - 1
    assert all(o.since[key] == 0 for o in seen for key in idle if key in o.since)


async def test_a_blocked_agent_fires_metric_then_ready_then_health_and_clears(
    watched_worker: WorkerProcess,
    watchdog_db: Settings,
    watchdog_producer: AIOKafkaProducer,
    codec: EventCodec,
) -> None:
    merchant, customer = new_merchant(watchdog_db), "00000000-0000-4000-8000-0000000b10c4"
    stuck = partition_of(merchant, customer)
    lock = CustomersLock(watchdog_db)
    first: dict[str, Observation] = {}
    try:
        await lock.take()
        await produce(watchdog_producer, codec, [rfm(merchant, customer, (2, 2, 2), at(1))])
        deadline = time.monotonic() + HEALTH_AFTER + 20
        while len(first) < 4 and time.monotonic() < deadline:
            seen = await observe(watched_worker, ("/ready", "/health", "/live"))
            if seen.stalled.get(stuck) == 1:
                first.setdefault("metric", seen)
            for path in ("/ready", "/health", "/live"):
                if seen.statuses[path] == 503:
                    first.setdefault(path, seen)
            await asyncio.sleep(0.25)
        assert set(first) == {"metric", "/ready", "/health", "/live"}, watched_worker.log_tail()
        assert first["metric"].at <= first["/ready"].at < first["/health"].at
        assert first["/ready"].bodies["/ready"]["checks"][CHECK] is False
        assert first["/ready"].since[stuck] >= READY_AFTER
        assert first["/health"].since[stuck] >= HEALTH_AFTER
        health = first["/health"].bodies["/health"]
        assert health["down"] == [CHECK], health
        topic, partition = stuck
        reason = f"DOWN: stalled partitions: {topic}[{partition}] lag 1, fetched, no commit"
        assert health["checks"][CHECK].startswith(reason), health
        live = first["/live"].bodies["/live"]
        assert live["down"] == [CHECK] and list(live["checks"]) == [CHECK], live
        assert live["checks"][CHECK].startswith(reason), live
        others = [o.stalled[key] for o in first.values() for key in o.stalled if key != stuck]
        assert others and not any(others), "only the blocked partition stalls"
    finally:
        await lock.release()
        lock.close()

    async def cleared() -> bool:
        seen = await observe(watched_worker, ("/ready", "/health", "/live"))
        return seen.stalled.get(stuck) == 0 and set(seen.statuses.values()) == {200}

    await eventually(cleared, timeout=30, interval=0.5)


@pytest.mark.slow
async def test_a_rebalance_stuck_behind_the_blocked_agent_keeps_the_watchdog_firing(
    watched_worker: WorkerProcess,
    worker_env: dict[str, str],
    watchdog_tansu: str,
    watchdog_db: Settings,
    watchdog_producer: AIOKafkaProducer,
    codec: EventCodec,
    data_root: Path,
) -> None:
    """robinhood #402: a second worker joins while an agent is blocked, so the first worker's
    revocation waits in `wait_empty` for the blocked event. The rebalance must not reset the stall:
    its clock keeps running and /live goes DOWN. Once the lock goes, both workers settle."""
    merchant, customer = new_merchant(watchdog_db), "00000000-0000-4000-8000-00000000402a"
    stuck = partition_of(merchant, customer)
    lock = CustomersLock(watchdog_db)
    joiner: WorkerProcess | None = None
    try:
        await lock.take()
        await produce(watchdog_producer, codec, [rfm(merchant, customer, (3, 3, 3), at(1))])

        async def stalled() -> bool:
            return (await observe(watched_worker)).stalled.get(stuck) == 1

        await eventually(stalled, timeout=READY_AFTER + 20, interval=0.5)
        env = worker_env | {
            "SERVICE_NAME": "core-watchdog-test",
            "KAFKA_BROKER": watchdog_tansu,
            "CORE_DB_NAME": watchdog_db.core_db_name,
            "DATA_DIR": str(data_root / "watchdog-data"),
            "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
        }
        joiner = start_worker("worker-watchdog-joiner", env)

        async def rebalancing() -> bool:  # another readiness check than the watchdog's fails
            checks = (await observe(watched_worker, ("/ready",))).bodies["/ready"].get("checks", {})
            return any(value is False for name, value in checks.items() if name != CHECK)

        await eventually(rebalancing, timeout=60, interval=0.5)
        since = []
        deadline = time.monotonic() + HEALTH_AFTER + 2
        while time.monotonic() < deadline:
            seen = await observe(watched_worker, ("/live",))
            since.append(seen.since.get(stuck))
            await asyncio.sleep(0.5)
        assert None not in since and since == sorted(since), f"the stall was reset: {since}"
        assert since[-1] >= HEALTH_AFTER and seen.statuses["/live"] == 503, (since, seen.bodies)
        await lock.release()
        await wait_ready(watched_worker, timeout=90)
        await wait_ready(joiner, timeout=90)
    finally:
        lock.close()
        if joiner is not None:
            stop_process(joiner.process)
    await wait_ready(watched_worker, timeout=90)
