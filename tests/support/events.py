"""Builders and Kafka/PostgreSQL helpers for the event-pipeline tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import psycopg2.extras
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from core_app.events.codec import EventCodec
from core_app.merchant_cli import create_merchant
from core_app.settings import Settings
from core_app.topics import GDPR_REQUEST_CREATED, POINTS_UPDATED, REFERRAL_CREATED, RFM_UPDATED
from tests.support.db import pg
from tests.support.processes import WorkerProcess, eventually

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(step: int) -> datetime:
    return T0 + timedelta(seconds=step)


def new_merchant(settings: Settings, name: str | None = None) -> str:
    """A new merchant, made as `core merchant create --shop <random>.myshopify.com` makes it (the
    CLI's own function, audited; never an SQL insert). Callable from sync and async tests alike:
    the CLI runs its own event loop, here in a thread of its own."""
    shop = f"t-{uuid.uuid4().hex[:20]}.myshopify.com"
    with ThreadPoolExecutor(1) as thread:
        merchant = thread.submit(create_merchant, settings, shop, name, "test:new_merchant").result()
    return str(merchant["id"])


def insert_customers(
    settings: Settings, merchant_id: str, count: int, metadata: str = "{}"
) -> list[tuple[str, str]]:
    """`count` customers of one merchant; returns (customer_id, email) pairs."""
    rows = [(str(uuid.uuid4()), merchant_id) for _ in range(count)]
    people = [(cid, f"person-{cid[:13]}@example.com") for cid, _ in rows]
    with pg(settings) as conn, conn.cursor() as cur:
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO customers (id, merchant_id, email, metadata) VALUES %s",
            [(cid, merchant_id, email, metadata) for cid, email in people],
            page_size=1000,
        )
    return people


def common(merchant_id: str, customer_id: str, when: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "merchant_id": merchant_id,
        "customer_id": customer_id,
        "occurred_at": when,
    }


def rfm(m: str, c: str, score: tuple[int, int, int], when: datetime) -> tuple[str, dict[str, Any]]:
    recency, frequency, monetary = score
    body = {"rfm_score": {"recency": recency, "frequency": frequency, "monetary": monetary}}
    return RFM_UPDATED, common(m, c, when) | body


def points(
    m: str, c: str, balance: int, when: datetime, tier: str | None = None, reason: str | None = None
) -> tuple[str, dict[str, Any]]:
    body = {"balance": balance, "lifetime_earned": balance * 2, "tier": tier}
    if reason is not None:  # optional in the schema: producers may leave it out
        body["reason"] = reason
    return POINTS_UPDATED, common(m, c, when) | body


def referral(m: str, c: str, total: int, when: datetime) -> tuple[str, dict[str, Any]]:
    body = {"referral_id": str(uuid.uuid4()), "referral_code": f"REF{total}", "total_referrals": total}
    return REFERRAL_CREATED, common(m, c, when) | body


def gdpr(m: str, c: str, when: datetime) -> tuple[str, dict[str, Any]]:
    body = {"request_id": str(uuid.uuid4()), "request_type": "REDACT", "requested_by": "dpo@shop"}
    return GDPR_REQUEST_CREATED, common(m, c, when) | body


async def produce(
    producer: AIOKafkaProducer,
    codec: EventCodec,
    events: Iterable[tuple[str, dict[str, Any]]],
    key: Callable[[dict[str, Any]], bytes | None] | None = None,
) -> None:
    """Send (topic, record) pairs keyed {merchant_id}:{customer_id} unless `key` says otherwise."""
    futures = []
    for topic, record in events:
        record_key = key(record) if key else f"{record['merchant_id']}:{record['customer_id']}".encode()
        futures.append(await producer.send(topic, key=record_key, value=await codec.encode(topic, record)))
    await asyncio.gather(*futures)


async def read_topic(
    bootstrap: str,
    topic: str,
    wanted: Callable[[ConsumerRecord], bool],
    count: int,
    timeout: float = 60.0,
) -> list[ConsumerRecord]:
    """Records of `topic` (from the start) that match `wanted`, once at least `count` are there."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap.removeprefix("kafka://"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    found: list[ConsumerRecord] = []
    try:

        async def enough() -> bool:
            batches = await consumer.getmany(timeout_ms=300, max_records=5000)
            found.extend(r for records in batches.values() for r in records if wanted(r))
            return len(found) >= count

        try:
            await eventually(enough, timeout=timeout, interval=0)
        except AssertionError:
            raise AssertionError(
                f"{topic}: {len(found)} of {count} wanted records after {timeout}s"
            ) from None
    finally:
        await consumer.stop()
    return found


def customer_rows(settings: Settings, merchant_id: str) -> dict[str, dict[str, Any]]:
    with pg(settings) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(
            """SELECT id::text AS id, email, email_hash, rfm_score, metadata, version, redacted_at,
                      c::text AS row_text
                 FROM customers c WHERE merchant_id = %s""",
            (merchant_id,),
        )
        return {row["id"]: dict(row) for row in cur.fetchall()}


def expected_final_state(events: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per customer: the newest rfm score and points balance, and how many events apply."""
    final: dict[str, dict[str, Any]] = {}
    for topic, record in events:
        state = final.setdefault(record["customer_id"], {"rfm": (None, None), "points": (None, None)})
        if topic == RFM_UPDATED:
            state["rfm"] = max(state["rfm"], (record["occurred_at"], record["rfm_score"]), key=_when)
        else:
            state["points"] = max(state["points"], (record["occurred_at"], record["balance"]), key=_when)
    return final


def _when(pair: tuple[Any, Any]) -> Any:
    return pair[0] or at(-(10**6))


def mixed_stream(merchant_id: str, customers: list[str], per_source: int) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for step in range(per_source):
        for n, customer_id in enumerate(customers):
            events.append(rfm(merchant_id, customer_id, (step, n % 50, step * 10 + n), at(step)))
            events.append(points(merchant_id, customer_id, step * 100 + n, at(step)))
    return events


async def wait_for_postgres(
    settings: Settings, merchant_id: str, expected: dict, version: int | None
) -> None:
    mismatches: list[str] = []

    async def matches() -> bool:
        rows = customer_rows(settings, merchant_id)
        mismatches.clear()
        for customer_id, want in expected.items():
            row = rows[customer_id]
            balance = (row["metadata"].get("points") or {}).get("balance")
            if (
                row["rfm_score"] != want["rfm"][1]
                or balance != want["points"][1]
                or (version is not None and row["version"] != version)
            ):
                mismatches.append(
                    f"{customer_id}: rfm {row['rfm_score']} want {want['rfm'][1]}, points {balance} "
                    f"want {want['points'][1]}, version {row['version']} want {version}"
                )
        return not mismatches

    try:
        await eventually(matches, timeout=120, interval=1)
    except AssertionError:
        raise AssertionError(f"{len(mismatches)} rows differ, e.g. {mismatches[:3]}") from None


async def get_customer(worker: WorkerProcess, merchant_id: str, customer_id: str) -> tuple[int, Any]:
    params = {"merchant_id": merchant_id, "customer_id": customer_id}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{worker.url}/core/v1/customers", params=params) as response,
    ):
        return response.status, await response.json()
