"""A broker that comes back empty under two running workers (Tansu in memory, restarted).

`/health` must name `kafka_data` DOWN within 30 s, since the service's topics, offsets and group are
gone; each worker then rebuilds (ready again, serving the versions PostgreSQL kept) or exits with
its own one-line reason; no worker crashes its peer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from core_app.events.codec import EventCodec
from core_app.settings import Settings
from core_app.worker import EXIT_FATAL
from tables.changelog import EXIT_PRODUCE_FAILED
from tests.support.events import at, customer_rows, insert_customers, new_merchant, produce, rfm
from tests.support.processes import (
    RestartableTansu,
    WorkerProcess,
    eventually,
    metric_samples,
    start_worker,
    stop_process,
    wait_ready,
)
from tests.support.readers import rest_read


@pytest.fixture
def tansu_wipeable(data_root: Path) -> Iterator[RestartableTansu]:
    broker = RestartableTansu(data_root / "tansu-wipe.log")
    broker.start()
    yield broker
    broker.stop()


async def health(url: str) -> tuple[int | str, dict[str, Any]]:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
            async with http.get(url) as response:
                return response.status, await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return type(exc).__name__, {}


async def kafka_data_down_after(workers: list[WorkerProcess], since: float, limit: float) -> dict[str, str]:
    """Per worker: when `/health` first named `kafka_data` DOWN, and why (or that it exited)."""
    found: dict[str, str] = {}
    while time.monotonic() - since < limit and len(found) < len(workers):
        for worker in workers:
            if worker.name in found:
                continue
            if worker.process.poll() is not None:
                found[worker.name] = f"exited {worker.process.returncode}"
                continue
            code, body = await health(f"{worker.url}/health")
            if code == 503 and "kafka_data" in body.get("down", []):
                found[worker.name] = f"{time.monotonic() - since:.1f}s: {body['checks']['kafka_data']}"
        await asyncio.sleep(0.5)
    return found


async def settled(worker: WorkerProcess, limit: float = 90) -> str:
    """'ready' once /ready answers 200, 'exited N' if the process ended, after at most `limit` s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            return f"exited {worker.process.returncode}"
        if (await health(f"{worker.url}/ready"))[0] == 200:
            return "ready"
        await asyncio.sleep(1)
    return "neither ready nor exited"


PEER_CRASH_SIGNS = ("ConsistencyError", "Event loop is closed")
LOST = "core_broker_data_lost_total"


@pytest.mark.slow
async def test_wiped_broker_turns_health_down_and_no_worker_crashes_a_peer(
    worker_env: dict[str, str],
    settings: Settings,
    codec: EventCodec,
    tansu_wipeable: RestartableTansu,
    data_root: Path,
) -> None:
    env = worker_env | {"KAFKA_BROKER": tansu_wipeable.url, "DATA_DIR": str(data_root / "wipe-data")}
    workers = [start_worker(f"wipe-worker-{n}", env) for n in (1, 2)]
    try:
        await asyncio.gather(*(wait_ready(w) for w in workers))
        merchant_id = new_merchant(settings)
        customers = [cid for cid, _ in insert_customers(settings, merchant_id, 50)]
        events = [rfm(merchant_id, c, (1 + s % 5, 2, 3), at(s)) for s in range(10) for c in customers]
        await produce_to(tansu_wipeable, codec, events)
        await eventually(lambda: synced(settings, merchant_id, customers, 10), timeout=60)

        tansu_wipeable.stop()
        tansu_wipeable.start()  # same address, nothing in it: topics, offsets and the group are gone
        down = await kafka_data_down_after(workers, time.monotonic(), limit=30)
        print(f"\nbroker wiped: kafka_data DOWN {down}")
        assert len(down) == len(workers), f"/health did not name kafka_data DOWN in 30 s: {down}"

        # Each worker rebuilds and is ready again, or exits with its own one-line reason; a worker
        # never takes a peer down, so one that did not hit a fatal condition of its own stays up.
        outcomes = {w.name: await settled(w) for w in workers}
        print(f"after the wipe: {outcomes}")
        for worker in workers:
            log_text = worker.log_path.read_text(errors="replace")
            signs = [sign for sign in PEER_CRASH_SIGNS if sign in log_text]
            assert not signs, f"{worker.name} logged {signs}\n{worker.log_tail()}"
            outcome = outcomes[worker.name]
            if outcome.startswith("exited"):
                assert outcome in (f"exited {EXIT_FATAL}", f"exited {EXIT_PRODUCE_FAILED}"), outcome
                last = log_text.strip().splitlines()[-1]
                assert "fatal, exiting:" in last, f"{worker.name} exited without its reason: {last}"
            else:
                assert outcome == "ready", f"{worker.name}: {outcome}\n{worker.log_tail()}"
        survivors = [w for w in workers if outcomes[w.name] == "ready"]
        assert survivors, f"no worker stayed up: {outcomes}"
        # Not only the changelogs: the group's own state going back is seen too (D115).
        evidence = {
            w.name: {labels["evidence"]: value for labels, value in await metric_samples(w, LOST)}
            for w in survivors
        }
        print(f"evidence of lost data: {evidence}")
        assert any({"generation", "committed_offsets"} & set(seen) for seen in evidence.values()), evidence

        # The rebuilt cluster serves: a new event per customer, read through every survivor, lands on
        # the version PostgreSQL kept (10) plus one.
        await produce_to(tansu_wipeable, codec, [rfm(merchant_id, c, (5, 5, 5), at(20)) for c in customers])
        for worker in survivors:
            await eventually(lambda w=worker: all_read(w, merchant_id, customers, 11), timeout=60)
        print(f"rebuilt: {len(customers)} customers at version 11 through {[w.name for w in survivors]}")
    finally:
        for worker in workers:
            stop_process(worker.process)


async def produce_to(broker: RestartableTansu, codec: EventCodec, events: list[tuple[str, dict]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        await produce(producer, codec, events)
    finally:
        await producer.stop()


async def synced(settings: Settings, merchant_id: str, customers: list[str], version: int) -> bool:
    rows = customer_rows(settings, merchant_id)
    return all(rows[c]["version"] == version for c in customers)


async def all_read(worker: WorkerProcess, merchant_id: str, customers: list[str], version: int) -> bool:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        answers = [await rest_read(http, worker, merchant_id, c) for c in customers]
    return all(answer == ({"recency": 5, "frequency": 5, "monetary": 5}, version) for answer in answers)


async def partition_counts(broker: RestartableTansu) -> dict[str, int]:
    """Every topic the broker holds, with its partition count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if not name.startswith("_")]
        described = await admin.describe_topics(names)
        return {topic["topic"]: len(topic["partitions"]) for topic in described}
    finally:
        await admin.close()


async def rebuilt(workers: dict[str, WorkerProcess], env: dict[str, str], limit: float) -> list[str]:
    """Until every worker answers `/ready` and `/health` 200; a worker that exits is started again
    under its name, as an orchestrator would (returned: who exited, with its code)."""
    exits: list[str] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for name, worker in list(workers.items()):
            if worker.process.poll() is not None:
                exits.append(f"{name} exited {worker.process.returncode}")
                workers[name] = start_worker(name, env)
        answers = [
            await health(f"{w.url}/{probe}") for w in workers.values() for probe in ("ready", "health")
        ]
        if all(code == 200 for code, _ in answers):
            return exits
        await asyncio.sleep(1)
    failing = {w.name: [await health(f"{w.url}/{p}") for p in ("ready", "health")] for w in workers.values()}
    tails = "\n".join(w.log_tail() for w in workers.values())
    raise AssertionError(f"not rebuilt in {limit:.0f} s (exits: {exits}): {failing}\n{tails}")


@pytest.mark.slow
async def test_every_worker_rebuilds_after_each_of_two_wipes_and_serves_what_postgresql_held(
    worker_env: dict[str, str],
    settings: Settings,
    codec: EventCodec,
    tansu_wipeable: RestartableTansu,
    data_root: Path,
) -> None:
    """Issue 20's long chaos run: after a second wipe one worker's recovery never completed. Six
    partitions (Tansu creates a topic it is asked about with four), workers that keep their local
    state across the wipes, and no topic provisioned by the test: each worker must recreate what it
    needs, become ready again, and serve every customer at the version PostgreSQL held, after one
    wipe and after the next."""
    env = worker_env | {
        "KAFKA_BROKER": tansu_wipeable.url,
        "DATA_DIR": str(data_root / "wipe2-data"),
        "KAFKA_TOPIC_PARTITIONS": "6",
        "BROKER_RESET_HOLD_SECONDS": "5",
    }
    workers = {name: start_worker(name, env) for name in ("wipe2-worker-1", "wipe2-worker-2")}
    exits: list[str] = []
    try:
        await asyncio.gather(*(wait_ready(w) for w in workers.values()))
        merchant_id = new_merchant(settings)
        customers = [cid for cid, _ in insert_customers(settings, merchant_id, 60)]
        events = [rfm(merchant_id, c, (1 + s % 5, 2, 3), at(s)) for s in range(5) for c in customers]
        await produce_to(tansu_wipeable, codec, events)
        version = 5
        await eventually(lambda: synced(settings, merchant_id, customers, version), timeout=60)
        for wipe in (1, 2):
            tansu_wipeable.stop()
            tansu_wipeable.start()
            # The hold (5 s) must have started before "healthy again" means anything.
            await asyncio.sleep(8)
            exits += await rebuilt(workers, env, limit=150)
            counts = await partition_counts(tansu_wipeable)
            print(f"wipe {wipe}: topics after the rebuild: {counts}")
            wrong = {name: count for name, count in counts.items() if count != 6}
            assert not wrong, f"wipe {wipe}: topics with another partition count than the tables': {wrong}"
            await produce_to(
                tansu_wipeable, codec, [rfm(merchant_id, c, (5, 5, 5), at(20 + wipe)) for c in customers]
            )
            version += 1
            for worker in workers.values():
                await eventually(
                    lambda w=worker, v=version: all_read(w, merchant_id, customers, v), timeout=90
                )
            await eventually(lambda v=version: synced(settings, merchant_id, customers, v), timeout=60)
            print(
                f"wipe {wipe}: every customer at version {version} through {sorted(workers)}; exits {exits}"
            )
        assert not exits, f"workers exited after a wipe instead of recreating their topics: {exits}"
    finally:
        for worker in workers.values():
            stop_process(worker.process)
