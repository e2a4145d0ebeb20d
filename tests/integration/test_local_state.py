"""Local table state the changelog no longer holds is discarded and rebuilt (D111, D117).

A worker stops cleanly, so its RocksDB keeps its tables and their persisted changelog offsets. While
it is away, another worker (its own state directory) moves every customer on, and the changelog
changes under the stopped worker's state:
- recreated: the broker comes back empty and the new changelog grows past the persisted offset, so
  the offsets line up but the records do not (without the check, recovery would read on from the
  persisted offset of another log and serve the old versions);
- truncated: the changelog's start is cut past the persisted offset, as retention does (faust #651;
  without the check, recovery would start at the new beginning over the old state). Tansu in memory
  neither applies retention nor deletes records, so a protocol proxy reports the cut start
  (tests/support/kafka_proxy.py).
Restarted, the first worker must serve every customer at its newest version: from the changelog for
the keys it still holds, from PostgreSQL for the rest.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from core_app.end_offsets import confirm_end_offsets
from core_app.events.codec import EventCodec
from core_app.settings import Settings
from tests.support.events import at, customer_rows, insert_customers, new_merchant, produce, rfm
from tests.support.kafka_proxy import LogStartProxy
from tests.support.processes import (
    RestartableTansu,
    WorkerProcess,
    eventually,
    metric,
    start_worker,
    stop_process,
    wait_ready,
)
from tests.support.readers import rest_read

CUSTOMERS = 40
FEW = 5  # customers of the last round
CHANGELOG = TopicPartition("core-customers-changelog", 0)
REASON = {"recreated": "unrelated", "truncated": "truncated"}  # core_table_state_discarded_total{reason}


@dataclass
class Setup:
    broker: RestartableTansu | LogStartProxy
    env: dict[str, str]
    settings: Settings
    codec: EventCodec
    merchant_id: str
    customers: list[str]

    def touched(self, step: int) -> list[str]:
        """Who a round moves on: everyone, but round 3 only the first few."""
        return self.customers[:FEW] if step == 3 else self.customers

    def expected(self, customer_id: str, steps: int) -> tuple[dict[str, int], int]:
        """(rfm score, version) after rounds 1..`steps`."""
        last = max(step for step in range(1, steps + 1) if customer_id in self.touched(step))
        version = sum(customer_id in self.touched(step) for step in range(1, steps + 1))
        return {"recency": last, "frequency": 1, "monetary": 1}, version

    async def send_round(self, step: int) -> None:
        """One rfm.updated per customer touched, scored `step`, occurring at step `step`."""
        producer = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap)
        await producer.start()
        try:
            events = [rfm(self.merchant_id, c, (step, 1, 1), at(step)) for c in self.touched(step)]
            await produce(producer, self.codec, events)
        finally:
            await producer.stop()

    async def persisted(self, steps: int) -> None:
        async def done() -> bool:
            rows = customer_rows(self.settings, self.merchant_id)
            return all(rows[c]["version"] == self.expected(c, steps)[1] for c in self.customers)

        await eventually(done, timeout=60)

    async def worker_through(self, name: str, rounds: list[int]) -> None:
        """Start `name`, apply `rounds` (each persisted to PostgreSQL before the next), stop it cleanly."""
        worker = start_worker(name, self.env)
        try:
            await wait_ready(worker)
            for step in rounds:
                await self.send_round(step)
                await self.persisted(step)
            await asyncio.sleep(3)  # a commit interval: the source offsets committed, the worker idle
        finally:
            code = await stop_with_stacks(worker)
        # A clean stop keeps the RocksDB state (a crash or the shutdown deadline discards it), which is
        # what the test is about. Faust's shutdown sometimes waits on its streams for over 10 s (D15),
        # so this test gives it SHUTDOWN_TIMEOUT=30.
        errors = getattr(self.broker, "errors", [])
        assert code == 0, f"{name} did not stop cleanly {errors[:3]}\n{worker.log_tail(300)}"

    async def truncate_changelog(self, keep: int) -> None:
        """Make the changelog start `keep` records before its end, as retention would."""
        assert isinstance(self.broker, LogStartProxy)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.broker.bootstrap, auto_offset_reset="none")
        await consumer.start()
        try:
            end = (await confirm_end_offsets(consumer, await consumer.end_offsets([CHANGELOG])))[CHANGELOG]
        finally:
            await consumer.stop()
        self.broker.log_starts[(CHANGELOG.topic, CHANGELOG.partition)] = (end or 0) - keep


async def stop_with_stacks(worker: WorkerProcess, timeout: float = 40) -> int:
    """SIGTERM, and the exit code; a worker still stopping after 12 s dumps its stacks to its log."""
    worker.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    dumped = False
    while worker.process.poll() is None and time.monotonic() - started < timeout:
        if not dumped and time.monotonic() - started > 12:
            worker.process.send_signal(signal.SIGUSR1)
            dumped = True
        await asyncio.sleep(0.5)
    stop_process(worker.process)
    return worker.process.returncode


async def reads(worker: WorkerProcess, merchant_id: str, customers: list[str]) -> dict[str, object]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        return {c: await rest_read(http, worker, merchant_id, c) for c in customers}


@pytest.mark.slow
@pytest.mark.parametrize("how", ["recreated", "truncated"])
async def test_state_the_changelog_no_longer_holds_is_rebuilt(
    how: str, worker_env: dict[str, str], settings: Settings, codec: EventCodec, data_root: Path
) -> None:
    # A broker that comes back empty, or one whose changelog start can be cut (tests/support/kafka_proxy.py).
    broker: RestartableTansu | LogStartProxy
    if how == "recreated":
        broker = RestartableTansu(data_root / f"tansu-local-{how}.log")
        broker.start()
    else:
        broker = LogStartProxy(data_root / f"tansu-local-{how}.log")
        await broker.start()
    env = worker_env | {
        "KAFKA_BROKER": broker.url,
        "KAFKA_TOPIC_PARTITIONS": "1",  # one changelog partition: its offsets are the test's to reason on
        "DATA_DIR": str(data_root / f"local-state-{how}"),
        "SHUTDOWN_TIMEOUT": "30",
    }
    merchant_id = new_merchant(settings)
    customers = [cid for cid, _ in insert_customers(settings, merchant_id, CUSTOMERS)]
    setup = Setup(broker, env, settings, codec, merchant_id, customers)
    first = f"local-{how}-1"
    try:
        await setup.worker_through(first, [1])  # its RocksDB keeps version 1 of each
        if isinstance(broker, RestartableTansu):
            broker.stop()
            broker.start()
        # Another worker moves everyone to version 2, then a few to version 3: the changelog outgrows the
        # first worker's persisted offset, and what follows it is the few (on a recreated broker the
        # second worker loads version 1 from PostgreSQL first).
        await setup.worker_through(f"local-{how}-2", [2, 3])
        if how == "truncated":
            await setup.truncate_changelog(keep=FEW)

        worker = start_worker(first, env)
        try:
            await wait_ready(worker)
            answers = await reads(worker, merchant_id, customers)
            wrong = {c: answer for c, answer in answers.items() if answer != setup.expected(c, 3)}
            discarded = await metric(worker, "core_table_state_discarded_total", reason=REASON[how])
            print(f"\n{how}: {len(wrong)} of {CUSTOMERS} reads stale, {discarded:.0f} partitions discarded")
            if isinstance(broker, LogStartProxy):
                assert broker.rewritten and not broker.errors, (broker.rewritten, broker.errors[:3])
            assert not wrong, f"{how}: {len(wrong)} stale, e.g. {list(wrong.items())[:3]}"
            assert discarded >= 1
        finally:
            stop_process(worker.process)
    finally:
        if isinstance(broker, LogStartProxy):
            await broker.stop()
        else:
            broker.stop()
