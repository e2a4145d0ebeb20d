"""Three workers on one Tansu under a steady keyed load, a reader on every worker, through rebalances.

The load is issue 15's: 500 rfm.updated events/s keyed by customer through aiokafka's default
(murmur2) partitioner, and about 100 reads/s, from a reader on every worker alternating REST and
gRPC. Each scenario must end with every worker ready within 60 s, the reads of every worker (REST
and gRPC) and the PostgreSQL rows equal to the last event per key, and no version regression seen
by any reader. The scenarios share one cluster and run in order; they print their counts.
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
from tests.support.cluster import (
    Cluster,
    KeyedLoad,
    key_history,
    mismatches,
    offsets_report,
    pipeline_counters,
)
from tests.support.events import insert_customers, new_merchant
from tests.support.processes import metric, metric_samples, running_tansu
from tests.support.readers import Readers

CUSTOMERS = 1000
EVENTS_PER_SECOND = 500
READS_PER_SECOND = 100  # across the three workers
WORKERS = 3
OVERLAP = 4.0  # seconds between the restarts of the back-to-back scenario
PRODUCER = os.environ.get("REBALANCE_PRODUCER", "aiokafka")
# REBALANCE_STANDBY_REPLICAS=1: the workers keep standby copies (production's default), so the
# survivors take over from them and the standbys' changelog apply is exercised (D238).
STANDBYS = os.environ.get("REBALANCE_STANDBY_REPLICAS", "0")


class Run:
    def __init__(
        self, cluster: Cluster, load: KeyedLoad, readers: Readers, settings: Settings, bootstrap: str
    ) -> None:
        self.cluster, self.load, self.readers, self.settings = cluster, load, readers, settings
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
        tally = self.readers.tally
        print(
            f"\n{scenario}: ready in {ready_in:.1f}s, read mismatches={reads}, pg mismatches={rows}, "
            f"regressions={len(tally.regressions)}, {tally.summary()}, "
            f"events={sum(self.load.sent.values())} ({self.load.achieved_rate:.0f}/s)"
        )
        assert not crashed, f"{scenario}: workers crashed: {crashed}"
        if (reads, rows) != (0, 0):
            partitions = int(self.cluster.env["KAFKA_TOPIC_PARTITIONS"])
            keys = [f"{self.load.merchant_id}:{e.split(':')[0]}" for e in examples]
            stuck = sorted({key_partition(key, partitions) for key in keys})
            report = await offsets_report(self.bootstrap, "core", "rfm.updated", partitions)
            counters = await pipeline_counters(self.cluster.workers)
            first = keys[0]
            counters += "\n" + await key_history(self.bootstrap, self.load.codec, first, partitions)
            raise AssertionError(f"{scenario}: {examples}\npartitions {stuck}\n{report}\n{counters}")
        assert not tally.regressions, f"{scenario}: {tally.regressions[:5]}"


@pytest.fixture(scope="module")
async def run(
    worker_env: dict[str, str], settings: Settings, codec: EventCodec, data_root: Path
) -> AsyncIterator[Run]:
    with running_tansu(data_root / "tansu-rebalance.log") as url:
        producer = AIOKafkaProducer(bootstrap_servers=url.removeprefix("kafka://"), linger_ms=5)
        await producer.start()
        merchant_id = new_merchant(settings)
        customers = [cid for cid, _ in insert_customers(settings, merchant_id, CUSTOMERS)]
        env = worker_env | {
            "KAFKA_BROKER": url,
            "KAFKA_TOPIC_PARTITIONS": "8",
            "TABLE_STANDBY_REPLICAS": STANDBYS,
        }
        readers = Readers(merchant_id, customers, READS_PER_SECOND / WORKERS)
        cluster = Cluster(env, data_root, readers)
        # REBALANCE_PRODUCER=librdkafka: the load comes from confluent-kafka with its default
        # partitioner (CRC32), so most events arrive off their key's partition and are forwarded.
        librdkafka = CrcProducer(url.removeprefix("kafka://")) if PRODUCER == "librdkafka" else None
        load = KeyedLoad(producer, codec, merchant_id, customers, EVENTS_PER_SECOND, librdkafka)
        task = asyncio.create_task(load.run())
        load.paused.set()  # until the workers are up
        try:
            for _ in range(WORKERS):
                cluster.start()
            await cluster.all_ready(timeout=120)
            load.paused.clear()
            await asyncio.sleep(3)
            yield Run(cluster, load, readers, settings, url.removeprefix("kafka://"))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await readers.close()
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
    fourth = run.cluster.start()  # a worker id never seen before: back to three
    await run.settle("scale up to a new worker")
    # The newcomer took partitions of the source topic, applies their events, and answers reads.
    assigned = [
        labels["partition"]
        for labels, _ in await metric_samples(fourth, "core_consumer_lag", topic="rfm.updated")
    ]
    applied = await metric(fourth, "core_events_processed_total")
    served = run.readers.tally.by_worker[fourth.name]
    print(
        f"{fourth.name}: {len(assigned)} rfm.updated partitions, {applied:.0f} events applied, {served} reads"
    )
    assert assigned and applied > 0 and served > 0, (assigned, applied, served)


@pytest.mark.slow
async def test_five_rebalances_back_to_back(run: Run) -> None:
    # Each worker in turn leaves (SIGTERM) and comes back, the next one OVERLAP seconds later: every
    # rebalance starts before the one before it has settled (recovery, seek, resume).
    for n in range(5):
        worker = run.cluster.workers[0]
        run.cluster.kill(worker, signal.SIGTERM)
        run.cluster.start(worker.name)
        print(f"rebalance {n + 1} of 5 started, ready: {await run.cluster.ready_count()}/{WORKERS}")
        await asyncio.sleep(OVERLAP)
    await run.settle("five rebalances back to back")
