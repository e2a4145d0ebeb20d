"""GDPR erasure reaches Kafka: every sealed copy of the email becomes unreadable (crypto-shredding).

A customer created over REST leaves its email, sealed under its own data key, in the command topic,
the table's changelog and `customer.created`. After `gdpr_request.created` the key is gone: the raw
records read back from Tansu still hold the old ciphertexts, none of which can be decrypted, and no
record holds the plaintext.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from core_app.events.codec import EventCodec
from core_app.security.shredding import KeyShredded
from core_app.settings import Settings
from core_app.topics import CUSTOMER_COMMANDS, CUSTOMER_CREATED, CUSTOMER_UPDATED
from tests.support.api import post_customer
from tests.support.db import pg
from tests.support.events import at, customer_rows, gdpr, new_merchant, produce, read_topic
from tests.support.processes import WorkerProcess, eventually
from tests.support.security import open_layer

SEALED = re.compile(rb"ce1:[A-Za-z0-9_-]+")
CHANGELOG = "core-customers-changelog"


def shredded_at(settings: Settings, merchant_id: str, customer_id: str) -> object:
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT shredded_at FROM customer_data_keys WHERE merchant_id = %s AND customer_id = %s",
            (merchant_id, customer_id),
        )
        row = cur.fetchone()
    return row[0] if row else None


def sealed_tokens(records: list[ConsumerRecord]) -> set[str]:
    return {match.decode() for record in records for match in SEALED.findall(record.value or b"")}


async def records_of(tansu: str, topic: str, key: bytes, count: int) -> list[ConsumerRecord]:
    return await read_topic(tansu, topic, lambda r: r.key is not None and key in r.key, count)


async def test_erasure_makes_every_sealed_email_in_kafka_unreadable(
    worker: WorkerProcess,
    settings: Settings,
    codec: EventCodec,
    tansu: str,
    producer: AIOKafkaProducer,
) -> None:
    merchant_id = new_merchant(settings)
    email = f"shred.me+{uuid.uuid4().hex[:8]}@example.com"
    status, created = await post_customer(worker, {"merchant_id": merchant_id, "email": email})
    assert status == 201, created
    customer_id = created["id"]
    key = f"{merchant_id}:{customer_id}".encode()

    before = [
        *await records_of(tansu, CUSTOMER_COMMANDS, key, 1),
        *await records_of(tansu, CHANGELOG, key, 1),
        *await records_of(tansu, CUSTOMER_CREATED, key, 1),
    ]
    tokens = sealed_tokens(before)
    [created_event] = [r for r in before if r.topic == CUSTOMER_CREATED]
    assert (await codec.decode(created_event.value))["email"] in tokens
    # A second worker (this process's layer) holds the customer's data key in its cache, for far
    # longer than the test; the worker process that erases the customer tells it to drop it (D184).
    async with open_layer(settings, auth_cache_ttl=600) as other_worker:
        await asyncio.wait_for(other_worker.broadcast.subscribed.wait(), 10)
        # Before the erasure the sealed copies are the customer's email: the test can tell.
        for token in tokens:
            assert (
                await other_worker.data_keys.decrypt_email(merchant_id, customer_id, token) == email.lower()
            )

        await produce(producer, codec, [gdpr(merchant_id, customer_id, at(5))])

        async def shredded() -> bool:
            return shredded_at(settings, merchant_id, customer_id) is not None

        await eventually(shredded, timeout=60, interval=0.05)
        noticed = time.monotonic()

        async def unreadable_there() -> bool:
            try:
                await other_worker.data_keys.decrypt_email(merchant_id, customer_id, tokens.copy().pop())
            except KeyShredded:
                return True
            return False

        await eventually(unreadable_there, timeout=1.0, interval=0.02)
        print(f"other worker's cached key gone {time.monotonic() - noticed:.3f} s after the shred was seen")

    async def redacted() -> bool:
        return customer_rows(settings, merchant_id)[customer_id]["redacted_at"] is not None

    await eventually(redacted, timeout=60)

    after = [
        *await records_of(tansu, CUSTOMER_COMMANDS, key, 1),
        *await records_of(tansu, CHANGELOG, key, 2),
        *await records_of(tansu, CUSTOMER_CREATED, key, 1),
        *await records_of(tansu, CUSTOMER_UPDATED, key, 1),
    ]
    assert sealed_tokens(after) == tokens, "the old ciphertexts are still in Kafka, as expected"
    for record in after:
        assert email.lower().encode() not in (record.value or b"").lower(), record.topic
    async with open_layer(settings) as layer:
        for token in tokens:
            try:
                await layer.data_keys.decrypt_email(merchant_id, customer_id, token)
            except KeyShredded:
                continue
            raise AssertionError(f"{token[:16]}... still decrypts after the erasure")
