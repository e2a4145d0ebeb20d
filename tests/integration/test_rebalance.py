"""Three workers on one Tansu under a steady keyed load, a reader on every worker, through rebalances.

Each scenario must end with every worker ready within 60 s, the reads of every worker and the
PostgreSQL rows equal to the last event per key, and no version regression seen by the reader.
The scenarios share one cluster and run in order (issue 15's acceptance).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from bench.rdkafka import CrcProducer
from core_app.events.codec import EventCodec
from core_app.routing import key_partition
from core_app.settings import Settings
from tests.helpers import running_tansu
from tests.integration.cluster import (
    Cluster,
    KeyedLoad,
    Reader,
    key_history,
    mismatches,
    offsets_report,
    pipeline_counters,
)
from tests.integration.events import insert_customers, new_merchant

CUSTOMERS = 300
EVENTS_PER_SECOND = 200
PRODUCER = os.environ.get("REBALANCE_PRODUCER", "aiokafka")


class Run:
    def __init__(
        self, cluster: Cluster, load: KeyedLoad, reader: Reader, settings: Settings, bootstrap: str
    ) -> None:
        self.cluster, self.load, self.reader, self.settings = cluster, load, reader, settings
        self.bootstrap = bootstrap

    async def settle(self, scenario: str) -> None:
        """All ready in 60 s, then quiet: every read and row as expected, no regression. Prints counts."""
        crashed = self.cluster.crashed()
        ready_in = await self.cluster.all_ready(timeout=60)
        self.load.paused.set()
        try:
            reads, rows, examples = await mismatches(self.settings, self.load, self.cluster.workers)
        finally:
            self.load.paused.clear()
        crashed += self.cluster.crashed()
        print(
            f"\n{scenario}: ready in {ready_in:.1f}s, read mismatches={reads}, pg mismatches={rows}, "
            f"regressions={len(self.reader.regressions)}, reads answered={self.reader.answered}, "
            f"failed={dict(self.reader.failed)}, events={sum(self.load.sent.values())}"
        )
        assert not crashed, f"{scenario}: workers crashed: {crashed}"
        if (reads, rows) != (0, 0):
            partitions = int(self.cluster.env["KAFKA_TOPIC_PARTITIONS"])
            stuck = sorted(
                {
                    key_partition(f"{self.load.merchant_id}:{e.split()[1].rstrip(':')}", partitions)
                    for e in examples
                }
            )
            report = await offsets_report(self.bootstrap, "core", "rfm.updated", partitions)
            counters = await pipeline_counters(self.cluster.workers)
            first = f"{self.load.merchant_id}:{examples[0].split()[1].rstrip(':')}"
            counters += "\n" + await key_history(self.bootstrap, self.load.codec, first, partitions)
            raise AssertionError(f"{scenario}: {examples}\npartitions {stuck}\n{report}\n{counters}")
        assert not self.reader.regressions, f"{scenario}: {self.reader.regressions[:5]}"


@pytest.fixture(scope="module")
async def run(
    worker_env: dict[str, str], settings: Settings, codec: EventCodec, data_root: Path
) -> AsyncIterator[Run]:
    with running_tansu(data_root / "tansu-rebalance.log") as url:
        producer = AIOKafkaProducer(bootstrap_servers=url.removeprefix("kafka://"), linger_ms=5)
        await producer.start()
        merchant_id = new_merchant(settings)
        customers = [cid for cid, _ in insert_customers(settings, merchant_id, CUSTOMERS)]
        env = worker_env | {"KAFKA_BROKER": url, "KAFKA_TOPIC_PARTITIONS": "8"}
        cluster = Cluster(env, data_root)
        for _ in range(3):
            cluster.start()
        await cluster.all_ready(timeout=120)
        # REBALANCE_PRODUCER=librdkafka: the load comes from confluent-kafka with its default
        # partitioner (CRC32), so most events arrive off their key's partition and are forwarded.
        librdkafka = CrcProducer(url.removeprefix("kafka://")) if PRODUCER == "librdkafka" else None
        load = KeyedLoad(producer, codec, merchant_id, customers, EVENTS_PER_SECOND, librdkafka)
        reader = Reader(merchant_id, customers, cluster.workers)
        tasks = [asyncio.create_task(load.run()), asyncio.create_task(reader.run())]
        try:
            await asyncio.sleep(3)
            yield Run(cluster, load, reader, settings, url.removeprefix("kafka://"))
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            cluster.stop()
            await producer.stop()


async def test_sigkill_one_worker_and_restart(run: Run) -> None:
    victim = run.cluster.workers[0]
    run.cluster.kill(victim)
    await asyncio.sleep(10)
    run.cluster.start(victim.name)
    await run.settle("SIGKILL one, restart")


@pytest.mark.slow
async def test_sigkill_two_workers_at_once_and_restart(run: Run) -> None:
    victims = run.cluster.workers[:2]
    for victim in victims:
        run.cluster.kill(victim)
    await asyncio.sleep(5)
    for victim in victims:
        run.cluster.start(victim.name)
    await run.settle("SIGKILL two, restart both")


@pytest.mark.slow
async def test_sigterm_one_for_good_then_add_a_fourth(run: Run) -> None:
    run.cluster.kill(run.cluster.workers[-1], signal.SIGTERM)
    await run.settle("SIGTERM one for good")
    run.cluster.start()  # a fourth worker id: back to three
    await run.settle("scale up to four")


@pytest.mark.slow
async def test_five_rebalances_in_a_row(run: Run) -> None:
    # A rolling restart: each worker leaves and comes back, and the next goes once all are ready.
    # (Restarts 4 s apart, each before the last rebalance completed, once left the group without an
    # assignment for over a minute on Tansu; see the closing note of issue 15.)
    for n in range(5):
        worker = run.cluster.workers[0]
        run.cluster.kill(worker, signal.SIGTERM)
        run.cluster.start(worker.name)
        await run.cluster.all_ready(timeout=60)
        print(f"rebalance {n + 1} of 5 complete")
    await run.settle("five rebalances in a row")
