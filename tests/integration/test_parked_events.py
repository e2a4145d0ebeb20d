"""Events for customers that do not exist yet are parked (D103): applied once the customer exists,
dead-lettered with their reason only after PARKED_EVENT_TTL_SECONDS (shortened here)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extras
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from core_app.events.codec import EventCodec
from core_app.migrate import migrate
from core_app.settings import Settings
from core_app.topics import DEAD_LETTER
from tests.support.db import pg
from tests.support.events import at, customer_rows, get_customer, new_merchant, produce, read_topic, rfm
from tests.support.processes import (
    WorkerProcess,
    eventually,
    metric,
    running_tansu,
    start_worker,
    stop_process,
    wait_ready,
)

CREATED_AFTER = 30.0  # seconds between the event and its customer
TTL = 40.0


@pytest.fixture
def own_tansu(data_root: Path) -> Iterator[str]:
    with running_tansu() as url:
        yield url


@pytest.fixture
def own_db(settings: Settings) -> Iterator[Settings]:
    """A database of its own: every worker's ParkedEvents claims due rows of its database, so the
    session worker (another broker) must not see these."""
    own = settings.model_copy(update={"core_db_name": f"{settings.core_db_name}_parking"})
    migrate(own)
    yield own
    admin = psycopg2.connect(settings.model_copy(update={"core_db_name": "postgres"}).db_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{own.core_db_name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
async def parking_worker(
    worker_env: dict[str, str], own_tansu: str, own_db: Settings, data_root: Path
) -> AsyncIterator[WorkerProcess]:
    env = worker_env | {
        "CORE_DB_NAME": own_db.core_db_name,
        "KAFKA_BROKER": own_tansu,
        "DATA_DIR": str(data_root / "parking-data"),
        "PARKED_EVENT_TTL_SECONDS": str(TTL),
        "PARKED_RETRY_BASE_SECONDS": "0.5",
        "PARKED_RETRY_MAX_SECONDS": "2",
    }
    worker = start_worker("worker-parking", env)
    try:
        await wait_ready(worker)
        yield worker
    finally:
        stop_process(worker.process)


def insert_customer(settings: Settings, merchant_id: str, customer_id: str) -> None:
    """As an import does: the row appears in PostgreSQL, no event tells the worker."""
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO customers (id, merchant_id, email, metadata) VALUES (%s, %s, %s, '{}')",
            (customer_id, merchant_id, f"late-{customer_id[:8]}@example.com"),
        )


def parked_keys(settings: Settings, merchant_id: str) -> set[str]:
    with pg(settings) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT customer_id::text FROM parked_events WHERE merchant_id = %s", (merchant_id,))
        return {row["customer_id"] for row in cur.fetchall()}


async def dead_letter_keys(bootstrap: str) -> list[bytes]:
    """Every key in core.dlq, read to its end."""
    consumer = AIOKafkaConsumer(
        DEAD_LETTER, bootstrap_servers=bootstrap.removeprefix("kafka://"), auto_offset_reset="earliest"
    )
    await consumer.start()
    keys: list[bytes] = []
    try:
        await consumer.getmany(timeout_ms=500)  # joins the assignment
        partitions = consumer.assignment()
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(list(partitions))

        async def behind() -> bool:
            positions = [await consumer.position(tp) for tp in ends]
            return any(position < end for position, end in zip(positions, ends.values(), strict=True))

        while await behind():
            for records in (await consumer.getmany(timeout_ms=500)).values():
                keys.extend(record.key for record in records)
    finally:
        await consumer.stop()
    return keys


@pytest.mark.slow
async def test_an_early_event_waits_for_its_customer_and_expires_to_the_dlq_only_after_the_ttl(
    parking_worker: WorkerProcess, own_db: Settings, codec: EventCodec, own_tansu: str
) -> None:
    settings = own_db
    merchant_id = new_merchant(settings)
    late, never = str(uuid.uuid4()), str(uuid.uuid4())
    producer = AIOKafkaProducer(bootstrap_servers=own_tansu.removeprefix("kafka://"))
    await producer.start()
    try:
        sent = time.monotonic()
        await produce(producer, codec, [rfm(merchant_id, c, (4, 4, 4), at(4)) for c in (late, never)])
    finally:
        await producer.stop()

    async def both_parked() -> bool:
        return parked_keys(settings, merchant_id) == {late, never}

    await eventually(both_parked)

    async def gauge_counts_them() -> bool:
        return await metric(parking_worker, "core_parked_events") >= 2

    await eventually(gauge_counts_them, timeout=10)

    await asyncio.sleep(max(0.0, CREATED_AFTER - (time.monotonic() - sent)))
    insert_customer(settings, merchant_id, late)

    async def applied() -> Any:
        status, body = await get_customer(parking_worker, merchant_id, late)
        row = customer_rows(settings, merchant_id).get(late) or {}
        return (
            status == 200
            and body["source"] == "table"
            and row.get("rfm_score")
            == body["rfm_score"]
            == {
                "recency": 4,
                "frequency": 4,
                "monetary": 4,
            }
        )

    await eventually(applied, timeout=15)
    assert parked_keys(settings, merchant_id) == {never}
    assert (time.monotonic() - sent) < TTL, "the late customer's event must be applied before the TTL"

    [letter] = await read_topic(
        own_tansu, DEAD_LETTER, lambda r: r.key == f"{merchant_id}:{never}".encode(), 1, timeout=TTL + 15
    )
    headers = dict(letter.headers)
    assert headers["error_kind"] == b"unknown_customer"
    assert f"no customer {merchant_id}:{never}".encode() in headers["reason"]
    assert (time.monotonic() - sent) >= TTL
    assert parked_keys(settings, merchant_id) == set()
    assert f"{merchant_id}:{late}".encode() not in await dead_letter_keys(own_tansu)
