"""`core demo --merchant M [--customers 1000]`: sample customers, then realistic rfm.updated,
points.updated and referral.created events through the real topics (Avro, Confluent framing, the
registry), so the agents, tables, sink, segments and lists all run on them.

The customers are inserted in PostgreSQL batches as an import does (deterministic ids and emails,
so a second run adds events, not customers). `--wait` returns once PostgreSQL holds every score.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from core_app import db
from core_app.customer_import.store import insert_customers
from core_app.domain.timeline import demo_entry
from core_app.events.codec import EventCodec
from core_app.kafka_security import client_options
from core_app.repository import merchant_exists
from core_app.security.principal import normalise_merchant
from core_app.settings import Settings, load_settings
from core_app.topics import POINTS_UPDATED, REFERRAL_CREATED, RFM_UPDATED

BATCH = 500
TIERS = ("bronze", "silver", "gold", "platinum")
TAGS = ("vip", "newsletter", "wholesale", "returning")
DEMO_NAMESPACE = uuid.UUID("1d6a3c2e-5b7f-4c1a-9e8d-2f4b6a8c0e12")


def demo_customers(merchant: str, count: int, rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    now_ms = int(time.time() * 1000)
    for index in range(count):
        cid = str(uuid.uuid5(DEMO_NAMESPACE, f"{merchant}:{index}"))
        tags = sorted(rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2))))
        metadata: dict[str, Any] = {"source": "demo", "locale": rng.choice(("en", "fr", "de", "ar", "he"))}
        if tags:
            metadata["tags"] = tags
        rows.append(
            {
                "id": cid,
                "email": f"demo-{index:06d}.{merchant[:8]}@example.com",
                "metadata": metadata,
                "entry": demo_entry(now_ms),  # the timeline's first line (D170)
            }
        )
    return rows


def customer_events(merchant: str, cid: str, rng: random.Random, start: datetime) -> list[tuple[str, dict]]:
    """One customer's history: an RFM score, one to three points balances, sometimes referrals."""

    def event(topic: str, when: datetime, **body: Any) -> tuple[str, dict]:
        head = {
            "event_id": str(uuid.uuid4()),
            "merchant_id": merchant,
            "customer_id": cid,
            "occurred_at": when,
        }
        return topic, head | body

    orders = max(0, int(rng.expovariate(1 / 4)))
    score = {
        "recency": min(36_500, int(rng.expovariate(1 / 45))),
        "frequency": orders,
        "monetary": int(orders * rng.uniform(15, 180)),
    }
    events = [event(RFM_UPDATED, start + timedelta(seconds=rng.uniform(0, 60)), rfm_score=score)]
    balance = 0
    for step in range(rng.randint(1, 3)):
        earned = rng.randint(10, 400)
        balance += earned
        tier = TIERS[min(len(TIERS) - 1, balance // 400)]
        when = start + timedelta(seconds=60 + step * 60 + rng.uniform(0, 50))
        reason = rng.choice((f"order #{rng.randint(1001, 9999)}", "signup bonus", "product review"))
        body = {"balance": balance, "lifetime_earned": balance, "tier": tier, "reason": reason}
        events.append(event(POINTS_UPDATED, when, **body))
    if rng.random() < 0.1:
        total = rng.randint(1, 3)
        when = start + timedelta(seconds=300 + rng.uniform(0, 60))
        body = {
            "referral_id": str(uuid.uuid4()),
            "referral_code": f"REF{cid[:6].upper()}",
            "total_referrals": total,
        }
        events.append(event(REFERRAL_CREATED, when, **body))
    return events


async def produce_all(settings: Settings, events: list[tuple[str, dict]]) -> None:
    codec = EventCodec(settings.schema_registry_url, settings.avro_dir)
    await codec.register_all()
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=20)
    await producer.start()
    try:
        pending = []
        for topic, record in events:
            key = f"{record['merchant_id']}:{record['customer_id']}".encode()
            pending.append(await producer.send(topic, key=key, value=await codec.encode(topic, record)))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def scored(pool: Any, merchant: str, ids: list[str]) -> int:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT count(*) FROM customers"
            " WHERE merchant_id = %s AND id = ANY(%s::uuid[]) AND rfm_score <> '{}'",
            (merchant, ids),
        )
        row = await cur.fetchone()
    return int(row[0])


async def run_demo_async(settings: Settings, merchant: str, count: int, seed: int, wait: float) -> int:
    rng = random.Random(seed)
    pool = await db.create_pool(settings, minsize=1, maxsize=2)
    try:
        if not await merchant_exists(pool, merchant):
            print(
                f"core demo: no merchant {merchant}; create it first (core merchant create)", file=sys.stderr
            )
            return 2
        rows = demo_customers(merchant, count, rng)
        created = 0
        for start in range(0, len(rows), BATCH):
            created += len(await insert_customers(pool, merchant, rows[start : start + BATCH]))
        print(f"core demo: {created} new customers ({count - created} already there)")
        start_at = datetime.now(UTC) - timedelta(minutes=10)
        events = [e for row in rows for e in customer_events(merchant, row["id"], rng, start_at)]
        await produce_all(settings, events)
        print(f"core demo: produced {len(events)} events (rfm.updated, points.updated, referral.created)")
        if wait > 0:
            ids = [row["id"] for row in rows]
            deadline = time.monotonic() + wait
            while (done := await scored(pool, merchant, ids)) < count:
                if time.monotonic() > deadline:
                    print(
                        f"core demo: only {done}/{count} scored in PostgreSQL after {wait:.0f} s",
                        file=sys.stderr,
                    )
                    return 1
                await asyncio.sleep(0.5)
            print(f"core demo: all {count} customers scored in PostgreSQL")
        return 0
    finally:
        pool.close()
        await pool.wait_closed()


def run_demo(args: argparse.Namespace) -> int:
    merchant = normalise_merchant(args.merchant)
    if merchant is None:
        print(f"core demo: --merchant must be a UUID, got {args.merchant!r}", file=sys.stderr)
        return 2
    return asyncio.run(run_demo_async(load_settings(), merchant, args.customers, args.seed, args.wait))
