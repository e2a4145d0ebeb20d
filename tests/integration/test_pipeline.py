"""The event pipeline against Tansu, PostgreSQL, Redis and the registry:
event -> table -> PostgreSQL (through the sink) -> produced customer.updated."""

from __future__ import annotations

import json
import struct
import uuid
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from schema_registry.client.schema import AvroSchema

from core_app.events.codec import EventCodec
from core_app.settings import Settings
from core_app.topics import CUSTOMER_UPDATED, DEAD_LETTER, RFM_UPDATED
from tests.support.db import pg
from tests.support.events import (
    at,
    customer_rows,
    expected_final_state,
    gdpr,
    insert_customers,
    mixed_stream,
    new_merchant,
    points,
    produce,
    read_topic,
    referral,
    rfm,
    wait_for_postgres,
)
from tests.support.processes import WorkerProcess, eventually

TOPIC_CASES = {
    "rfm.updated": (
        lambda m, c: rfm(m, c, (7, 3, 420), at(10)),
        lambda state: state["rfm_score"] == {"recency": 7, "frequency": 3, "monetary": 420},
        "RFM",
    ),
    "points.updated": (
        lambda m, c: points(m, c, 150, at(10), tier="gold"),
        lambda state: (
            state["metadata"]["points"]["balance"] == 150 and state["metadata"]["points"]["tier"] == "gold"
        ),
        "POINTS",
    ),
    "referral.created": (
        lambda m, c: referral(m, c, 4, at(10)),
        lambda state: state["metadata"]["referrals"]["total"] == 4,
        "REFERRAL",
    ),
    "gdpr_request.created": (
        lambda m, c: gdpr(m, c, at(10)),
        lambda state: state["metadata"] == {} and state.get("redacted", True),
        "GDPR_REDACTION",
    ),
}


async def rest_customer(worker: WorkerProcess, merchant_id: str, customer_id: str) -> dict[str, Any]:
    params = {"merchant_id": merchant_id, "customer_id": customer_id}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{worker.url}/core/v1/customers", params=params) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


def keyed(*keys: str):
    wanted = {key.encode() for key in keys}
    return lambda record: record.key in wanted


@pytest.mark.parametrize("topic", list(TOPIC_CASES))
async def test_event_reaches_table_then_postgres_then_customer_updated(
    topic: str,
    worker: WorkerProcess,
    settings: Settings,
    codec: EventCodec,
    producer: AIOKafkaProducer,
    tansu: str,
) -> None:
    build, holds, change = TOPIC_CASES[topic]
    merchant_id = new_merchant(settings)
    [(customer_id, _email)] = insert_customers(settings, merchant_id, 1, metadata='{"vip": true}')
    await produce(producer, codec, [build(merchant_id, customer_id)])

    async def in_table() -> dict | None:
        state = await rest_customer(worker, merchant_id, customer_id)
        return state if state["source"] == "table" and holds(state) else None

    table_state = await eventually(in_table)
    assert table_state["version"] == 1

    async def in_postgres() -> dict | None:
        row = customer_rows(settings, merchant_id)[customer_id]
        return row if row["version"] == 1 and holds(row) else None

    row = await eventually(in_postgres)
    assert row["metadata"] == table_state["metadata"]
    assert row["rfm_score"] == table_state["rfm_score"]

    [produced] = await read_topic(tansu, CUSTOMER_UPDATED, keyed(f"{merchant_id}:{customer_id}"), 1)
    event = await codec.decode(produced.value)
    assert str(event["customer_id"]) == customer_id
    assert str(event["merchant_id"]) == merchant_id
    assert event["changes"] == [change]
    assert event["version"] == 1
    assert json.loads(event["metadata"]) == table_state["metadata"]
    if topic == "gdpr_request.created":
        assert row["email"] == "redacted" and row["email_hash"] is None
        assert row["redacted_at"] is not None
        assert event["redacted"] is True
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT action, actor FROM audit_logs WHERE entity_id = %s AND merchant_id = %s",
                (customer_id, merchant_id),
            )
            assert cur.fetchall() == [("gdpr.redact", "dpo@shop")]

        async def tracked() -> bool:  # AdminCore's REDACT is a tracked request, done once applied (D160)
            with pg(settings) as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT kind, source, status, deadline_at - received_at FROM gdpr_requests"
                    " WHERE merchant_id = %s AND customer_id = %s",
                    (merchant_id, customer_id),
                )
                return cur.fetchall() == [("redact", "admincore", "done", timedelta(days=30))]

        await eventually(tracked, timeout=10)
    else:
        assert row["metadata"]["vip"] is True  # merges keep what was there


async def redis_text(redis: Redis, key: bytes) -> str:
    """Whatever `key` holds, as text: cache entries are strings, the security layer's keys are hashes,
    sets and sorted sets."""
    kind = (await redis.type(key)).decode()
    readers = {
        "string": redis.get,
        "hash": redis.hgetall,
        "set": redis.smembers,
        "zset": lambda k: redis.zrange(k, 0, -1),
        "list": lambda k: redis.lrange(k, 0, -1),
    }
    value = await readers[kind](key) if kind in readers else None
    return repr(value)


async def test_gdpr_leaves_no_email_or_first_name_anywhere(
    worker: WorkerProcess,
    settings: Settings,
    codec: EventCodec,
    producer: AIOKafkaProducer,
    tansu: str,
) -> None:
    merchant_id = new_merchant(settings)
    first_name = "Adelheid"
    [(customer_id, email)] = insert_customers(
        settings, merchant_id, 1, metadata=json.dumps({"first_name": first_name, "tier": "gold"})
    )
    key = f"{merchant_id}:{customer_id}"
    cache_key = f"{settings.redis_key_prefix}customer:{merchant_id}:{customer_id}"
    import redis.asyncio as aioredis

    redis = aioredis.Redis.from_url(settings.redis_dsn)
    await produce(producer, codec, [rfm(merchant_id, customer_id, (1, 2, 3), at(1))])
    await produce(producer, codec, [points(merchant_id, customer_id, 10, at(2))])

    async def both_applied() -> dict | None:  # topics are not ordered with each other
        state = await rest_customer(worker, merchant_id, customer_id)
        return state if state["source"] == "table" and state["version"] == 2 else None

    view = await eventually(both_applied)
    # What another worker would have cached for this customer (see the read path).
    await redis.set(cache_key, json.dumps(view))
    await produce(producer, codec, [gdpr(merchant_id, customer_id, at(3))])

    async def redacted_in_postgres() -> dict | None:
        row = customer_rows(settings, merchant_id)[customer_id]
        return row if row["redacted_at"] is not None else None

    row = await eventually(redacted_in_postgres)
    needles = [email.lower(), email.split("@")[0], first_name.lower()]

    def clean(text: str) -> bool:
        return not any(needle in text.lower() for needle in needles)

    assert clean(row["row_text"]) and row["email"] == "redacted" and row["metadata"] == {}
    assert clean(json.dumps(await rest_customer(worker, merchant_id, customer_id)))

    changelog_key = json.dumps(key).encode()  # Faust writes table keys as JSON
    changelog = await read_topic(tansu, "core-customers-changelog", lambda r: r.key == changelog_key, 3)
    assert all(clean(record.value.decode()) for record in changelog)
    latest = json.loads(changelog[-1].value)
    assert (latest["email"], latest["email_hash"], latest["metadata"]) == ("redacted", None, {})

    updates = await read_topic(tansu, CUSTOMER_UPDATED, keyed(key), 3)
    for record in updates:
        decoded = await codec.decode(record.value)
        assert clean(json.dumps(decoded, default=str))

    assert await redis.get(cache_key) is None
    async for any_key in redis.scan_iter(match=f"{settings.redis_key_prefix}*"):
        assert clean(await redis_text(redis, any_key)), any_key
    await redis.aclose()


async def test_replayed_and_stale_events_leave_the_final_state(
    worker: WorkerProcess, settings: Settings, codec: EventCodec, producer: AIOKafkaProducer
) -> None:
    merchant_id = new_merchant(settings)
    customers = [cid for cid, _ in insert_customers(settings, merchant_id, 100)]
    events = mixed_stream(merchant_id, customers, per_source=5)
    assert len(events) == 1000
    await produce(producer, codec, events)
    await produce(producer, codec, events)  # the same 1,000 events again
    await produce(producer, codec, [rfm(merchant_id, customers[0], (99, 99, 99), at(-5))])  # stale

    final = expected_final_state(events)
    await wait_for_postgres(settings, merchant_id, final, version=10)
    for customer_id in customers:
        state = await rest_customer(worker, merchant_id, customer_id)
        assert state["source"] == "table"
        assert state["rfm_score"] == final[customer_id]["rfm"][1]
        assert state["metadata"]["points"]["balance"] == final[customer_id]["points"][1]
        assert state["version"] == 10


async def test_poison_events_are_dead_lettered_and_good_ones_all_applied(
    worker: WorkerProcess,
    settings: Settings,
    codec: EventCodec,
    producer: AIOKafkaProducer,
    tansu: str,
    registry_url: str,
) -> None:
    from schema_registry.client import AsyncSchemaRegistryClient

    merchant_id, other_merchant = new_merchant(settings), str(uuid.uuid4())
    customers = [cid for cid, _ in insert_customers(settings, merchant_id, 500)]
    good = mixed_stream(merchant_id, customers, per_source=5)
    assert len(good) == 5000

    # A schema whose `recency` is a string: a registered id, a decodable body, the wrong field type.
    wrong_type = AvroSchema(
        {
            "type": "record",
            "name": "RfmUpdatedWrong",
            "fields": [
                {"name": "merchant_id", "type": "string"},
                {"name": "customer_id", "type": "string"},
                {"name": "rfm_score", "type": {"type": "map", "values": "string"}},
            ],
        }
    )
    wrong_id = await AsyncSchemaRegistryClient(url=registry_url).register("poison-wrong-type", wrong_type)
    valid = await codec.encode(RFM_UPDATED, rfm(merchant_id, customers[0], (1, 1, 1), at(0))[1])
    poison: list[tuple[bytes, bytes, str]] = []
    for n in range(10):
        customer_id = customers[n]
        key = f"{merchant_id}:{customer_id}".encode()
        out_of_range = rfm(merchant_id, customer_id, (1, 1, 1), at(n))[1]
        out_of_range["rfm_score"]["monetary"] = -5
        wrong = await codec.serializer.encode_record_with_schema_id(
            wrong_id, {"merchant_id": merchant_id, "customer_id": customer_id, "rfm_score": {"recency": "x"}}
        )
        poison += [
            (key, b"\x07" + valid[1:], "bad_magic"),
            (key, struct.pack(">bI", 0, 987_654) + valid[5:], "unknown_schema"),
            (key, wrong, "invalid"),
            (key, await codec.encode(RFM_UPDATED, out_of_range), "invalid"),
            (f"{other_merchant}:{customer_id}".encode(), valid, "merchant_mismatch"),
        ]
    assert len(poison) == 50

    await produce(producer, codec, good[:2500])
    await __import__("asyncio").gather(
        *[await producer.send(RFM_UPDATED, key=key, value=value) for key, value, _ in poison]
    )
    await produce(producer, codec, good[2500:])

    mine = {key for key, _, _ in poison}
    letters = await read_topic(tansu, DEAD_LETTER, lambda r: r.key in mine, 50)
    by_origin = {
        (dict(r.headers)["source_partition"], dict(r.headers)["source_offset"]): dict(r.headers)
        for r in letters
    }
    assert len(by_origin) == 50
    kinds = sorted(headers["error_kind"].decode() for headers in by_origin.values())
    assert kinds == sorted(kind for _, _, kind in poison)
    assert all(
        headers["reason"] and headers["source_topic"] == b"rfm.updated" for headers in by_origin.values()
    )

    await wait_for_postgres(settings, merchant_id, expected_final_state(good), version=10)


async def test_a_dead_letter_keeps_the_producers_key_timestamp_and_headers(
    worker: WorkerProcess, settings: Settings, codec: EventCodec, producer: AIOKafkaProducer, tansu: str
) -> None:
    merchant_id = new_merchant(settings)
    [(customer_id, _)] = insert_customers(settings, merchant_id, 1)
    key = f"{merchant_id}:{customer_id}".encode()
    valid = await codec.encode(RFM_UPDATED, rfm(merchant_id, customer_id, (1, 1, 1), at(0))[1])
    sent_at = 1_700_000_000_123
    producer_headers = [("trace_id", b"abc-1"), ("source_topic", b"spoofed"), ("content-type", b"avro")]
    await producer.send_and_wait(
        RFM_UPDATED, key=key, value=b"\x07" + valid[1:], timestamp_ms=sent_at, headers=producer_headers
    )

    [letter] = await read_topic(tansu, DEAD_LETTER, lambda r: r.key == key, 1)
    headers = dict(letter.headers)
    assert letter.key == key and letter.value == b"\x07" + valid[1:]
    assert headers["error_kind"] == b"bad_magic" and headers["source_topic"] == b"rfm.updated"
    assert headers["source_timestamp"] == str(sent_at).encode()
    assert headers["trace_id"] == b"abc-1" and headers["content-type"] == b"avro"
    assert headers["original.source_topic"] == b"spoofed"  # ours keeps its name; theirs is prefixed
    assert {"source_partition", "source_offset", "received_on", "reason"} <= headers.keys()


async def test_events_keyed_another_way_are_rekeyed_then_applied(
    worker: WorkerProcess, settings: Settings, codec: EventCodec, producer: AIOKafkaProducer
) -> None:
    merchant_id = new_merchant(settings)
    customers = [cid for cid, _ in insert_customers(settings, merchant_id, 3)]
    odd_keys = {customers[0]: None, customers[1]: customers[1].encode(), customers[2]: b"order-42"}
    for customer_id, key in odd_keys.items():
        await produce(
            producer, codec, [rfm(merchant_id, customer_id, (5, 5, 5), at(1))], key=lambda _r, k=key: k
        )

    async def all_applied() -> bool:
        states = [await rest_customer(worker, merchant_id, cid) for cid in customers]
        return all(
            s["source"] == "table" and s["rfm_score"] == {"recency": 5, "frequency": 5, "monetary": 5}
            for s in states
        )

    await eventually(all_applied)
    from tests.support.processes import metric

    assert await metric(worker, "core_events_rekeyed_total", topic=RFM_UPDATED) >= 3


async def test_sink_dead_letters_a_row_postgres_refuses_and_goes_on(
    worker: WorkerProcess, settings: Settings, producer: AIOKafkaProducer, tansu: str
) -> None:
    merchant_id = new_merchant(settings)
    [(good_id, _)] = insert_customers(settings, merchant_id, 1)
    orphan_merchant, orphan_id = str(uuid.uuid4()), str(uuid.uuid4())  # no such merchant: FK violation

    def state(m: str, c: str, version: int) -> bytes:
        return json.dumps(
            {
                "merchant_id": m,
                "customer_id": c,
                "email": "redacted",
                "email_hash": None,
                "rfm_score": {},
                "metadata": {"n": version},
                "version": version,
                "applied_as_of": {},
                "redacted_at": None,
                "created_at": None,
                "updated_at": None,
            }
        ).encode()

    changelog = "core-customers-changelog"
    orphan_key = json.dumps(f"{orphan_merchant}:{orphan_id}").encode()
    sent_at = 1_700_000_000_321
    await producer.send_and_wait(
        changelog,
        key=orphan_key,
        value=state(orphan_merchant, orphan_id, 1),
        partition=0,
        timestamp_ms=sent_at,
        headers=[("trace_id", b"sink-1")],
    )
    good_key = json.dumps(f"{merchant_id}:{good_id}").encode()
    await producer.send_and_wait(changelog, key=good_key, value=state(merchant_id, good_id, 7), partition=0)

    [letter] = (await read_topic(tansu, DEAD_LETTER, lambda r: r.key == orphan_key, 1))[:1]
    headers = dict(letter.headers)
    assert headers["error_kind"] == b"sink_rejected"
    assert b"foreign key" in headers["reason"]
    assert headers["trace_id"] == b"sink-1"  # the record's own headers and timestamp stay with it
    assert headers["source_timestamp"] == str(sent_at).encode()

    async def good_row_written() -> bool:
        return customer_rows(settings, merchant_id)[good_id]["version"] == 7

    await eventually(good_row_written)


async def test_the_standalone_sinks_dead_letters_keep_the_records_headers_and_timestamp(
    worker: WorkerProcess, settings: Settings, tansu: str
) -> None:
    """`core sink` sends dead letters with its own producer, through the same headers (D150)."""
    from core_app.dead_lettering import KafkaDeadLetters
    from core_app.services.ports import FailedRecord

    dead_letters = KafkaDeadLetters(settings.model_copy(update={"kafka_broker": tansu}))
    key = f"sink-{uuid.uuid4()}".encode()
    await dead_letters.start()
    try:
        record = FailedRecord(
            key=key,
            value=b"{}",
            origin="core-customers-changelog",
            partition=2,
            offset=9,
            headers=(("trace_id", b"s-2"), ("error_kind", b"theirs")),
            timestamp_ms=1_700_000_000_999,
        )
        await dead_letters.dead_letter(record, "sink_rejected", "violates foreign key")
    finally:
        await dead_letters.stop()
    [letter] = await read_topic(tansu, DEAD_LETTER, lambda r: r.key == key, 1)
    headers = dict(letter.headers)
    assert headers["error_kind"] == b"sink_rejected" and headers["original.error_kind"] == b"theirs"
    assert headers["trace_id"] == b"s-2" and headers["source_timestamp"] == b"1700000000999"
    assert headers["source_topic"] == b"core-customers-changelog" and headers["source_offset"] == b"9"
