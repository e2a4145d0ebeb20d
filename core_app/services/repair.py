"""`core repair --merchant M`: merge the copies of a merchant's customers split across partitions.

Before D100, an event that arrived off its key's murmur2 partition wrote a copy of the customer into
that partition's table (and changelog), with its own version line, and the sink let whichever copy
had the higher version win PostgreSQL. This use case reads every partition of the customers
changelog (the last record per partition and key), the merchant's PostgreSQL rows, and for each
customer whose copies disagree merges them by `occurred_at` per source (core_app/domain/repair.py).
The merged state goes to the owner as a `repair` command on `core.customer.commands` (to the key's
own partition, chosen explicitly): the owner merges it with its current copy, writes its table with a
version above every copy, and the sink then rewrites the PostgreSQL row. Misplaced copies stay where
they are: nothing reads or writes a key outside its own partition any more. Idempotent: run again,
it finds nothing to repair (or the owner skips what it already holds).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from redis.asyncio import Redis

from core_app import topics
from core_app.db import create_pool
from core_app.domain.customer import CustomerState
from core_app.domain.repair import merge_copies, needs_repair
from core_app.end_offsets import confirmed_end_offsets
from core_app.kafka_security import client_options
from core_app.repository import fetch_merchant_customers
from core_app.routing import key_partition
from core_app.settings import Settings

Copies = dict[str, dict[int, CustomerState]]  # key -> changelog partition -> last state there


@dataclass
class RepairReport:
    merchant_id: str
    customers_seen: int = 0
    split: int = 0
    repaired: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "merchant_id": self.merchant_id,
            "customers_seen": self.customers_seen,
            "split": self.split,
            "repaired": len(self.repaired),
            "unanswered": len(self.unanswered),
        }


async def read_copies(settings: Settings, merchant_id: str) -> Copies:
    """The last changelog record of each of the merchant's keys, per partition, read to the end."""
    topic = f"{settings.service_name}-customers-changelog"
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, fetch_max_wait_ms=100)
    await consumer.start()
    copies: Copies = {}
    prefix = f'"{merchant_id}:'.encode()  # D25: changelog keys are JSON strings
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
        ends = await confirmed_end_offsets(consumer, partitions)  # Tansu under-reports ends (D110)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        pending = {tp for tp in partitions if ends[tp] > 0}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    if record.key and record.key.startswith(prefix):
                        key = json.loads(record.key)
                        if record.value is None:
                            copies.get(key, {}).pop(tp.partition, None)
                        else:
                            copies.setdefault(key, {})[tp.partition] = CustomerState.from_dict(
                                json.loads(record.value)
                            )
                    if record.offset + 1 >= ends[tp]:
                        pending.discard(tp)
    finally:
        await consumer.stop()
    return copies


async def stored_rows(settings: Settings, merchant_id: str) -> dict[str, CustomerState]:
    pool = await create_pool(settings, minsize=1, maxsize=1)
    try:
        return await fetch_merchant_customers(pool, merchant_id)
    finally:
        pool.close()
        await pool.wait_closed()


def plan_repairs(
    copies: Copies, stored: dict[str, CustomerState], partitions: int
) -> dict[str, CustomerState]:
    """key -> the merged state to send to its owner, for each key whose copies disagree."""
    plan: dict[str, CustomerState] = {}
    for key, by_partition in copies.items():
        own_partition = key_partition(key, partitions)
        own = by_partition.get(own_partition)
        others = [state for p, state in sorted(by_partition.items()) if p != own_partition]
        row = stored.get(key)
        if needs_repair(own, others, row):
            candidates = [state for state in (own, *others, row) if state is not None]
            plan[key] = merge_copies(candidates)
    return plan


async def send_repairs(
    settings: Settings, redis: Redis, plan: dict[str, CustomerState], timeout: float
) -> list[str]:
    """Send each merged state to its owner; returns the keys whose owner did not answer in time."""
    channel = f"{settings.redis_key_prefix}reply:repair:{uuid.uuid4()}"
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel)
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    waiting = set(plan)
    try:
        acks = []
        for key, state in plan.items():
            merchant_id, customer_id = key.split(":", 1)
            command = {
                "kind": "repair",
                "key": key,
                "merchant_id": merchant_id,
                "customer_id": customer_id,
                "state": state.to_dict(),
                "request_id": str(uuid.uuid4()),
                "reply_to": channel,
            }
            partition = key_partition(key, settings.kafka_topic_partitions)
            value = json.dumps(command).encode()
            acks.append(await producer.send(topics.CUSTOMER_COMMANDS, value, key.encode(), partition))
        await asyncio.gather(*acks)
        async with asyncio.timeout(timeout):
            while waiting:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    result = json.loads(message["data"]).get("result") or {}
                    waiting.discard(f"{result.get('merchant_id')}:{result.get('id')}")
    except TimeoutError:
        pass
    finally:
        await producer.stop()
        await pubsub.unsubscribe(channel)
        await pubsub.aclose()
    return sorted(waiting)


async def repair_merchant(
    settings: Settings, redis: Redis, merchant_id: str, timeout: float = 60
) -> RepairReport:
    report = RepairReport(merchant_id)
    copies = await read_copies(settings, merchant_id)
    stored = await stored_rows(settings, merchant_id)
    report.customers_seen = len(copies.keys() | stored.keys())
    report.split = sum(1 for by_partition in copies.values() if len(by_partition) > 1)
    plan = plan_repairs(copies, stored, settings.kafka_topic_partitions)
    report.unanswered = await send_repairs(settings, redis, plan, timeout) if plan else []
    report.repaired = sorted(set(plan) - set(report.unanswered))
    return report
