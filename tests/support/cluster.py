"""A multi-worker cluster under a steady keyed load, with a reader on every worker.

`KeyedLoad` produces rfm.updated events at a fixed rate and remembers, per key, the newest score and
how many events it sent; the readers (tests/support/readers.py) read random keys through each
worker all along, over REST and gRPC, and count a version lower than one already seen as a
regression. `Cluster` starts, kills and restarts `core worker` processes on one Tansu, attaching a
reader to each worker it starts.
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
from grpclib.client import Channel

from bench.rdkafka import CrcProducer
from core_app.events.codec import EventCodec
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.settings import Settings
from core_app.topics import RFM_UPDATED
from tests.support.events import at, customer_rows, rfm
from tests.support.processes import WorkerProcess, eventually, start_worker, stop_process, wait_ready
from tests.support.readers import Readers, grpc_read, rest_read

READ_CONCURRENCY = 16  # reads in flight while comparing every key through every worker


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
    _sending_seconds: float = 0.0  # time spent producing, pauses excluded

    @property
    def achieved_rate(self) -> float:
        """Events per second actually produced while not paused."""
        return sum(self.sent.values()) / self._sending_seconds if self._sending_seconds else 0.0

    async def run(self) -> None:
        # aiokafka's default partitioner is murmur2, Kafka's own: every event lands on its key's
        # partition (the librdkafka variant uses CRC32 and sends most events off it).
        # Each tick sends what the rate owes since the start (pauses excluded), so a slow round trip
        # to the broker or a starved test process makes bigger batches, not a lower rate.
        tick = 0.02
        while True:
            if self.paused.is_set():
                await asyncio.sleep(tick)
                continue
            started = time.monotonic()
            owed = int(self.rate * (self._sending_seconds + tick)) - self._step  # _step: events sent
            futures = [await self._send_one() for _ in range(min(max(owed, 0), int(self.rate)))]
            if self.librdkafka is not None:
                await self.librdkafka.flush()
            await asyncio.gather(*(future for future in futures if future is not None))
            await asyncio.sleep(max(0.0, tick - (time.monotonic() - started)))
            self._sending_seconds += time.monotonic() - started

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
class Cluster:
    env: dict[str, str]
    data_root: Path
    readers: Readers | None = None  # one reader attached to every worker started
    workers: list[WorkerProcess] = field(default_factory=list)
    _started: int = 0

    def start(self, name: str | None = None) -> WorkerProcess:
        if name is None:
            self._started += 1
            name = f"rb-worker-{self._started}"
        env = self.env | {"DATA_DIR": str(self.data_root / "rebalance-data")}
        worker = start_worker(name, env)
        self.workers.append(worker)
        if self.readers is not None:
            self.readers.attach(worker)
        return worker

    def kill(self, worker: WorkerProcess, how: signal.Signals = signal.SIGKILL) -> None:
        self.workers.remove(worker)
        if self.readers is not None:
            self.readers.detach(worker)
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

    async def ready_count(self) -> int:
        """How many live workers answer /ready with 200 right now."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:

            async def ready(worker: WorkerProcess) -> bool:
                try:
                    async with http.get(f"{worker.url}/ready") as response:
                        return response.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    return False

            return sum(await asyncio.gather(*(ready(worker) for worker in self.workers)))

    def crashed(self) -> list[str]:
        return [
            f"{w.name} exited {w.process.returncode}" for w in self.workers if w.process.poll() is not None
        ]

    def stop(self) -> None:
        for worker in self.workers:
            stop_process(worker.process)
        self.workers.clear()


async def mismatches(
    settings: Settings, load: KeyedLoad, workers: list[WorkerProcess], timeout: float = 180.0
) -> tuple[int, int, list[str]]:
    """(read mismatches, PostgreSQL mismatches, examples) once the cluster is quiet, or at the timeout
    (a backlog of the full load after two workers were killed takes over a minute on a busy host).

    Every key is read through every worker over REST and over gRPC."""
    found: list[str] = []
    counts = [0, 0]

    async def compare() -> bool:
        found.clear()
        counts[:] = [0, 0]
        rows = customer_rows(settings, load.merchant_id)
        for customer_id in load.customers:
            score, version = load.expected(customer_id)
            row = rows[customer_id]
            if (row["rfm_score"], row["version"]) != (score, version):
                counts[1] += 1
                found.append(f"{customer_id}: pg {row['rfm_score']} v{row['version']} want v{version}")
        channels = {worker.name: Channel("127.0.0.1", worker.grpc_port) for worker in workers}
        gate = asyncio.Semaphore(READ_CONCURRENCY)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:

                async def check(customer_id: str, worker: WorkerProcess, transport: str) -> None:
                    async with gate:
                        if transport == "rest":
                            got = await rest_read(http, worker, load.merchant_id, customer_id)
                        else:
                            stub = CoreServiceStub(channels[worker.name])
                            got = await grpc_read(stub, load.merchant_id, customer_id)
                    want = load.expected(customer_id)
                    if got != want:
                        counts[0] += 1
                        found.append(f"{customer_id}: {worker.name} {transport} {got} want {want}")

                await asyncio.gather(
                    *(
                        check(customer_id, worker, transport)
                        for customer_id in load.customers
                        for worker in workers
                        for transport in ("rest", "grpc")
                    )
                )
        finally:
            for channel in channels.values():
                channel.close()
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
