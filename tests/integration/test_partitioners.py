"""Any producer partitioner gives the same state: misrouted events are forwarded to their key's own
partition (agents/repartition.py), and every read surface, the table and PostgreSQL agree.

Each key's events arrive out of order (by `occurred_at`): the newest per source must win whatever
path each event took.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from core_app.events.codec import EventCodec
from core_app.settings import Settings
from tests.support.events import at, expected_final_state, insert_customers, new_merchant, points, rfm
from tests.support.partitioning import STRATEGIES, Event, Producers, wait_for_agreement
from tests.support.processes import (
    WorkerProcess,
    diagnose,
    eventually,
    metric,
    running_tansu,
    start_worker,
    stop_process,
    wait_ready,
)

KEYS = 2000
PARTITIONS = 4  # KAFKA_TOPIC_PARTITIONS of the test workers


def shuffled_stream(
    merchant_id: str, customers: list[str], rfm_events: int, points_events: int
) -> list[Event]:
    """Per customer, rfm and points events whose `occurred_at` order differs from their send order."""
    rng = random.Random(1414)
    events: list[Event] = []
    for n, customer_id in enumerate(customers):
        steps = list(range(rfm_events + points_events))
        rng.shuffle(steps)
        for i, step in enumerate(steps):
            if i < rfm_events:
                events.append(rfm(merchant_id, customer_id, (step, n % 50, step * 10 + n), at(step)))
            else:
                events.append(points(merchant_id, customer_id, step * 100 + n, at(step)))
    return events


def strategy_per_key(customers: list[str]) -> dict[str, str]:
    return {customer_id: STRATEGIES[n % len(STRATEGIES)] for n, customer_id in enumerate(customers)}


async def test_every_partitioner_gives_the_same_state_everywhere(
    worker: WorkerProcess, settings: Settings, codec: EventCodec, tansu: str
) -> None:
    merchant_id = new_merchant(settings)
    customers = [cid for cid, _ in insert_customers(settings, merchant_id, KEYS)]
    events = shuffled_stream(merchant_id, customers, rfm_events=3, points_events=2)
    by_key = strategy_per_key(customers)
    before = await metric(worker, "core_events_repartitioned_total")
    async with Producers(tansu, codec, PARTITIONS) as producers:
        await producers.send(events, lambda _n, event: by_key[event[1]["customer_id"]])
        crc32_misrouted = producers.assert_crc32_routing()
    print(f"sent per strategy: {dict(producers.sent)}; librdkafka records off murmur2: {crc32_misrouted}")
    assert crc32_misrouted > 0.5 * producers.sent["crc32"]

    counts = await wait_for_agreement(worker, settings, merchant_id, expected_final_state(events))
    assert not any(counts.values()), counts
    # Every "wrong" record, most crc32 and random ones, went through the forward.
    forwarded = await metric(worker, "core_events_repartitioned_total") - before
    assert forwarded >= producers.sent["wrong"] + crc32_misrouted


@pytest.fixture
def own_tansu(data_root: Path) -> Iterator[str]:
    with running_tansu() as url:
        yield url


@pytest.mark.slow
async def test_mixed_partitioners_with_a_sigkill_mid_way(
    worker_env: dict[str, str],
    settings: Settings,
    codec: EventCodec,
    own_tansu: str,
    data_root: Path,
) -> None:
    merchant_id = new_merchant(settings)
    customers = [cid for cid, _ in insert_customers(settings, merchant_id, KEYS)]
    events = shuffled_stream(merchant_id, customers, rfm_events=2, points_events=2)
    index = {customer_id: n for n, customer_id in enumerate(customers)}
    env = worker_env | {
        "KAFKA_BROKER": own_tansu,
        "DATA_DIR": str(data_root / "partitioners-data"),
        "KAFKA_SESSION_TIMEOUT": "6",  # the killed member leaves the group sooner
    }

    worker = start_worker("worker-partitioners", env)
    await wait_ready(worker)
    async with Producers(own_tansu, codec, PARTITIONS) as producers:
        # The same key changes strategy from one event to the next.
        await producers.send(
            events, lambda n, event: STRATEGIES[(n + index[event[1]["customer_id"]]) % len(STRATEGIES)]
        )

    async def partly_done() -> bool:
        return await metric(worker, "core_events_processed_total") >= len(events) // 4

    await eventually(partly_done, timeout=120, interval=0.1)
    assert await metric(worker, "core_events_processed_total") < len(events), "finished before the kill"
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait(10)

    restarted = start_worker("worker-partitioners", env)  # same worker id and data directory
    try:
        await wait_ready(restarted)
        try:
            counts = await wait_for_agreement(restarted, settings, merchant_id, expected_final_state(events))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{await diagnose(restarted)}") from None
        assert not any(counts.values()), counts
    finally:
        stop_process(restarted.process)
