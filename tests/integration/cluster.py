"""A multi-worker cluster under a steady keyed load, with a reader on every worker.

`KeyedLoad` produces rfm.updated events at a fixed rate and remembers, per key, the newest score and
how many events it sent; `Reader` reads random keys through every worker all along and records
each answer, counting a version lower than one it already saw for that key as a regression.
`Cluster` starts, kills and restarts `core worker` processes on one Tansu.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from bench.rdkafka import CrcProducer
from core_app.events.codec import EventCodec
from core_app.settings import Settings
from core_app.topics import RFM_UPDATED
from tests.helpers import WorkerProcess, eventually, start_worker, stop_process, wait_ready
from tests.integration.events import at, customer_rows, rfm


@dataclass
class KeyedLoad:
    producer: AIOKafkaProducer
    codec: EventCodec
    merchant_id: str
    customers: list[str]
    rate: float  # events per second
    # librdkafka (confluent-kafka, its default consistent_random partitioner) instead of aiokafka.
    librdkafka: CrcProducer | None = None
    sent: Counter[str] = field(default_factory=Counter)
    last_score: dict[str, dict[str, int]] = field(default_factory=dict)
    paused: asyncio.Event = field(default_factory=asyncio.Event)
    _step: int = 0

    async def run(self) -> None:
        tick = 0.02
        per_tick = max(1, round(self.rate * tick))
        while True:
            if self.paused.is_set():
                await asyncio.sleep(tick)
                continue
            started = time.monotonic()
            futures = [await self._send_one() for _ in range(per_tick)]
            if self.librdkafka is not None:
                await self.librdkafka.flush()
            await asyncio.gather(*(future for future in futures if future is not None))
            await asyncio.sleep(max(0.0, tick - (time.monotonic() - started)))

    async def _send_one(self) -> asyncio.Future[Any] | None:
        self._step += 1
        customer_id = random.choice(self.customers)
        score = (1 + self._step % 5, 1 + (self._step // 5) % 5, 1 + (self._step // 25) % 5)
        topic, record = rfm(self.merchant_id, customer_id, score, at(self._step))
        self.sent[customer_id] += 1
        self.last_score[customer_id] = record["rfm_score"]
        value = await self.codec.encode(topic, record)
        key = f"{self.merchant_id}:{customer_id}".encode()
        if self.librdkafka is not None:
            self.librdkafka.send(RFM_UPDATED, key, value)
            return None
        return await self.producer.send(RFM_UPDATED, key=key, value=value)

    def expected(self, customer_id: str) -> tuple[dict[str, int], int]:
        """The customer's final rfm score and version (one version per applied event)."""
        return self.last_score.get(customer_id, {}), self.sent[customer_id]


@dataclass
class Reader:
    merchant_id: str
    customers: list[str]
    workers: list[WorkerProcess]  # the live list: the cluster edits it in place
    rate: float = 100.0
    answered: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    regressions: list[str] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=3)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                await asyncio.sleep(1 / self.rate)
                if self.workers:
                    await self._read_one(http, random.choice(self.workers), random.choice(self.customers))

    async def _read_one(self, http: aiohttp.ClientSession, worker: WorkerProcess, customer_id: str) -> None:
        body = await read_view(http, worker, self.merchant_id, customer_id)
        if isinstance(body, str):
            self.failed[body] += 1
            return
        self.answered += 1
        version = int(body["version"])
        before = self.seen.get(customer_id, -1)
        if version < before:
            self.regressions.append(
                f"{customer_id}: {before} -> {version} via {worker.name} ({body['source']})"
            )
        self.seen[customer_id] = max(before, version)


async def read_view(
    http: aiohttp.ClientSession, worker: WorkerProcess, merchant_id: str, customer_id: str
) -> dict[str, Any] | str:
    """The customer's REST view from `worker`, or why there is none ("http 503", an error's name)."""
    params = {"merchant_id": merchant_id, "customer_id": customer_id}
    try:
        async with http.get(f"{worker.url}/core/v1/customers", params=params) as response:
            if response.status != 200:
                return f"http {response.status}"
            return dict(await response.json())
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__


@dataclass
class Cluster:
    env: dict[str, str]
    data_root: Path
    workers: list[WorkerProcess] = field(default_factory=list)
    _started: int = 0

    def start(self, name: str | None = None) -> WorkerProcess:
        if name is None:
            self._started += 1
            name = f"rb-worker-{self._started}"
        env = self.env | {"DATA_DIR": str(self.data_root / "rebalance-data")}
        worker = start_worker(name, env)
        self.workers.append(worker)
        return worker

    def kill(self, worker: WorkerProcess, how: signal.Signals = signal.SIGKILL) -> None:
        self.workers.remove(worker)
        if how == signal.SIGKILL:
            worker.process.send_signal(signal.SIGKILL)
            worker.process.wait(10)
        else:
            stop_process(worker.process, timeout=30)

    async def all_ready(self, timeout: float = 60.0) -> float:
        """Seconds until every live worker is ready; fails if any exits or takes longer."""
        started = time.monotonic()
        await asyncio.gather(*(wait_ready(worker, timeout=timeout) for worker in self.workers))
        return time.monotonic() - started

    def crashed(self) -> list[str]:
        return [
            f"{w.name} exited {w.process.returncode}" for w in self.workers if w.process.poll() is not None
        ]

    def stop(self) -> None:
        for worker in self.workers:
            stop_process(worker.process)
        self.workers.clear()


async def mismatches(
    settings: Settings, load: KeyedLoad, workers: list[WorkerProcess], timeout: float = 60.0
) -> tuple[int, int, list[str]]:
    """(read mismatches, PostgreSQL mismatches, examples) once the cluster is quiet, or at the timeout."""
    found: list[str] = []
    counts = [0, 0]

    async def compare() -> bool:
        found.clear()
        counts[:] = [0, 0]
        rows = customer_rows(settings, load.merchant_id)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            for customer_id in load.customers:
                score, version = load.expected(customer_id)
                row = rows[customer_id]
                if (row["rfm_score"], row["version"]) != (score, version):
                    counts[1] += 1
                    found.append(f"pg {customer_id}: {row['rfm_score']} v{row['version']} want v{version}")
                for worker in workers:
                    body = await read_view(http, worker, load.merchant_id, customer_id)
                    got = body if isinstance(body, str) else (body["rfm_score"], int(body["version"]))
                    if got != (score, version):
                        counts[0] += 1
                        found.append(f"{worker.name} {customer_id}: {got} want {(score, version)}")
        return not any(counts)

    try:
        await eventually(compare, timeout=timeout, interval=1)
    except AssertionError:
        pass
    return counts[0], counts[1], found[:5]


async def offsets_report(bootstrap: str, group: str, topic: str, partitions: int) -> str:
    """Per partition of `topic`: the group's committed offset and the confirmed end, for a failure."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from core_app.end_offsets import confirm_end_offsets

    committed_reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="none")
    await committed_reader.start()
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        committed = {tp: await committed_reader.committed(tp) for tp in tps}
        ends = await confirm_end_offsets(consumer, await consumer.end_offsets(tps))
    finally:
        await consumer.stop()
        await committed_reader.stop()
    rows = [f"{tp.partition}: committed {committed.get(tp)} end {ends.get(tp)}" for tp in tps]
    return f"{group} on {topic}: " + "; ".join(rows)


PIPELINE_COUNTERS = ("core_events_processed_total", "core_events_skipped_total", "core_dead_letters_total")


async def pipeline_counters(workers: list[WorkerProcess]) -> str:
    """Each worker's applied, skipped and dead-lettered event counters, for a failure message."""
    lines = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        for worker in workers:
            try:
                async with http.get(f"{worker.url}/metrics") as response:
                    text = await response.text()
            except (aiohttp.ClientError, TimeoutError) as exc:
                lines.append(f"{worker.name}: /metrics failed: {exc!r}")
                continue
            wanted = [line for line in text.splitlines() if line.startswith(PIPELINE_COUNTERS)]
            lines.append(f"{worker.name}: " + "; ".join(wanted))
    return "\n".join(lines)


async def key_history(bootstrap: str, codec: EventCodec, key: str, partitions: int) -> str:
    """The key's changelog records (offset, version, rfm as-of) and its rfm.updated events, for a failure."""
    import json

    from aiokafka import AIOKafkaConsumer, TopicPartition

    from core_app.routing import key_partition

    partition = key_partition(key, partitions)
    lines = []
    for topic in ("core-customers-changelog", RFM_UPDATED):
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            rows = []
            for _ in range(20):
                batches = await consumer.getmany(tp, timeout_ms=300)
                if not batches:
                    break
                for record in batches.get(tp, []):
                    raw_key = record.key.decode(errors="replace") if record.key else ""
                    if key not in raw_key:
                        continue
                    if topic == RFM_UPDATED:
                        value = await codec.decode(record.value)
                        rows.append(f"{record.offset}:{value['occurred_at']:%H:%M:%S}")
                    else:
                        value = json.loads(record.value)
                        rows.append(
                            f"{record.offset}:v{value['version']}@{value['applied_as_of'].get('rfm')}"
                        )
            lines.append(f"{topic}[{partition}] for {key}: {' '.join(rows)}")
        finally:
            await consumer.stop()
    return "\n".join(lines)
