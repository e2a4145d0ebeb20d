"""The first vertical thread against the real broker: rfm.updated on Tansu -> RocksDB table -> REST."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from core_app.events.codec import EventCodec
from core_app.settings import Settings
from core_app.topics import DEAD_LETTER, RFM_UPDATED
from tests.support.db import pg
from tests.support.events import get_customer, insert_customers, new_merchant, read_topic
from tests.support.processes import WorkerProcess, eventually, metric

NOW = datetime.now(UTC).replace(microsecond=0)


def new_customer(settings: Settings) -> tuple[str, str]:
    merchant_id = new_merchant(settings)
    [(customer_id, _email)] = insert_customers(settings, merchant_id, 1)
    return merchant_id, customer_id


def rfm_event(merchant_id: str, customer_id: str, score: tuple[int, int, int], at: datetime) -> dict:
    recency, frequency, monetary = score
    return {
        "event_id": str(uuid.uuid4()),
        "merchant_id": merchant_id,
        "customer_id": customer_id,
        "rfm_score": {"recency": recency, "frequency": frequency, "monetary": monetary},
        "occurred_at": at,
    }


async def send(producer: AIOKafkaProducer, key: str, value: bytes) -> None:
    await producer.send_and_wait(RFM_UPDATED, key=key.encode(), value=value)


async def send_score(
    producer: AIOKafkaProducer,
    codec: EventCodec,
    ids: tuple[str, str],
    score: tuple[int, int, int],
    at: datetime,
) -> None:
    """One well-formed rfm.updated event for (merchant_id, customer_id), keyed as the producers key it."""
    merchant_id, customer_id = ids
    event = await codec.encode(RFM_UPDATED, rfm_event(merchant_id, customer_id, score, at))
    await send(producer, f"{merchant_id}:{customer_id}", event)


async def table_answer(
    worker: WorkerProcess, merchant_id: str, customer_id: str, version: int | None = None
) -> dict | None:
    """The REST read, if the table answered it (at `version`, when given)."""
    status, body = await get_customer(worker, merchant_id, customer_id)
    answered = status == 200 and body["source"] == "table"
    return body if answered and (version is None or body["version"] == version) else None


async def test_rfm_updated_reaches_the_table_and_rest(
    worker: WorkerProcess, settings: Settings, codec: EventCodec, producer: AIOKafkaProducer
) -> None:
    merchant_id, customer_id = new_customer(settings)
    await send_score(producer, codec, (merchant_id, customer_id), (12, 4, 870), NOW)

    body = await eventually(lambda: table_answer(worker, merchant_id, customer_id), timeout=30)
    assert body["rfm_score"] == {"recency": 12, "frequency": 4, "monetary": 870}
    assert body["id"] == customer_id
    assert body["merchant_id"] == merchant_id
    assert body["version"] == 1
    assert "email" not in body and "email_hash" not in body


async def test_a_read_after_a_change_sees_the_change(
    worker: WorkerProcess, settings: Settings, codec: EventCodec, producer: AIOKafkaProducer
) -> None:
    """Table reads are remembered (tables/read_memo.py, D44): the write that follows must show."""
    merchant_id, customer_id = new_customer(settings)
    await send_score(producer, codec, (merchant_id, customer_id), (3, 3, 300), NOW)

    await eventually(lambda: table_answer(worker, merchant_id, customer_id, 1), timeout=30)
    for _ in range(3):  # answered again and again, now from the memo
        assert await table_answer(worker, merchant_id, customer_id, 1) is not None
    await send_score(producer, codec, (merchant_id, customer_id), (4, 5, 600), NOW + timedelta(minutes=1))
    body = await eventually(lambda: table_answer(worker, merchant_id, customer_id, 2), timeout=30)
    assert body["rfm_score"] == {"recency": 4, "frequency": 5, "monetary": 600}


async def test_stale_rfm_event_never_moves_a_customer_backwards(
    worker: WorkerProcess, settings: Settings, codec: EventCodec, producer: AIOKafkaProducer
) -> None:
    ids = merchant_id, customer_id = new_customer(settings)
    skipped_before = await metric(worker, "core_events_skipped_total", topic=RFM_UPDATED, reason="stale")
    await send_score(producer, codec, ids, (1, 9, 900), NOW)
    await send_score(producer, codec, ids, (99, 1, 1), NOW - timedelta(hours=1))  # older: stale

    async def stale_skipped() -> bool:
        skipped = await metric(worker, "core_events_skipped_total", topic=RFM_UPDATED, reason="stale")
        return skipped >= skipped_before + 1

    await eventually(stale_skipped, timeout=30)
    status, body = await get_customer(worker, merchant_id, customer_id)
    assert status == 200
    assert body["rfm_score"] == {"recency": 1, "frequency": 9, "monetary": 900}
    assert body["version"] == 1


async def dead_letters_for(tansu: str, key: str, count: int) -> list[Any]:
    return await read_topic(tansu, DEAD_LETTER, lambda record: record.key == key.encode(), count, timeout=30)


async def test_bad_events_go_to_the_dead_letter_topic_and_the_agent_goes_on(
    worker: WorkerProcess,
    settings: Settings,
    codec: EventCodec,
    producer: AIOKafkaProducer,
    tansu: str,
) -> None:
    merchant_id, customer_id = new_customer(settings)
    key = f"{merchant_id}:{customer_id}"
    good = await codec.encode(RFM_UPDATED, rfm_event(merchant_id, customer_id, (3, 3, 3), NOW))
    out_of_range = await codec.encode(
        RFM_UPDATED,
        rfm_event(merchant_id, customer_id, (3, 3, 3), NOW)
        | {"rfm_score": {"recency": -5, "frequency": 1, "monetary": 1}},
    )
    await send(producer, key, b"not avro at all")
    await send(producer, key, b"\x00\x00\x0f\x42\x3f" + good[5:])  # schema id 999999
    await send(producer, key, out_of_range)
    await send(producer, key, good)

    letters = await dead_letters_for(tansu, key, count=3)
    kinds = sorted(dict(m.headers)["error_kind"].decode() for m in letters[:3])
    assert kinds == ["bad_magic", "invalid", "unknown_schema"]
    for letter in letters:
        headers = dict(letter.headers)
        assert headers["source_topic"] == RFM_UPDATED.encode()
        assert int(headers["source_offset"]) >= 0
        assert int(headers["source_partition"]) >= 0
        assert headers["reason"]
    invalid = next(m for m in letters if dict(m.headers)["error_kind"] == b"invalid")
    assert b"rfm_score.recency" in dict(invalid.headers)["reason"]

    async def applied() -> bool:
        status, body = await get_customer(worker, merchant_id, customer_id)
        return status == 200 and body["rfm_score"] == {"recency": 3, "frequency": 3, "monetary": 3}

    await eventually(applied, timeout=30)


async def test_event_for_unknown_customer_is_parked_not_dead_lettered(
    worker: WorkerProcess, settings: Settings, codec: EventCodec, producer: AIOKafkaProducer
) -> None:
    """Issue 14: the customer may be created later (D103); expiry to the DLQ: test_parked_events.py."""
    merchant_id, customer_id = str(uuid.uuid4()), str(uuid.uuid4())
    key = f"{merchant_id}:{customer_id}"
    await send(
        producer, key, await codec.encode(RFM_UPDATED, rfm_event(merchant_id, customer_id, (1, 1, 1), NOW))
    )

    async def parked() -> list[tuple[Any, ...]]:
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT source_topic, record_key FROM parked_events WHERE customer_id = %s", (customer_id,)
            )
            return cur.fetchall()

    [(topic, record_key)] = await eventually(parked, timeout=30)
    assert (topic, bytes(record_key)) == (RFM_UPDATED, key.encode())


async def test_customer_read_falls_back_to_postgres(worker: WorkerProcess, settings: Settings) -> None:
    merchant_id, customer_id = new_customer(settings)
    status, body = await get_customer(worker, merchant_id, customer_id)
    assert status == 200
    assert body["source"] == "postgres"
    assert body["rfm_score"] == {}


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"merchant_id": "nope", "customer_id": str(uuid.uuid4())}, 400, "merchant_id"),
        # Without customer_id the route lists the merchant's customers (issue 18); a bad one is a 400.
        ({"merchant_id": str(uuid.uuid4()), "customer_id": "nope"}, 400, "customer_id"),
        ({"merchant_id": str(uuid.uuid4()), "customer_id": str(uuid.uuid4())}, 404, None),
    ],
)
async def test_bad_or_unknown_reads_get_4xx(
    worker: WorkerProcess, params: dict, status: int, field: str | None
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{worker.url}/core/v1/customers", params=params) as response,
    ):
        body = await response.json()
    assert response.status == status
    assert body["error"].get("field") == field
