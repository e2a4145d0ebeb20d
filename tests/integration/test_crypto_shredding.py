"""GDPR erasure reaches Kafka: every sealed copy of the email becomes unreadable (crypto-shredding).

A customer created over REST leaves its email, sealed under its own data key, in the command topic,
the table's changelog and `customer.created`. After `gdpr_request.created` the key is gone: the raw
records read back from Tansu still hold the old ciphertexts, none of which can be decrypted, and no
record holds the plaintext.
"""

from __future__ import annotations

import re
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from core_app.events.codec import EventCodec
from core_app.security.shredding import KeyShredded
from core_app.settings import Settings
from core_app.topics import CUSTOMER_COMMANDS, CUSTOMER_CREATED, CUSTOMER_UPDATED
from tests.helpers import WorkerProcess, eventually
from tests.integration.events import at, customer_rows, gdpr, new_merchant, produce, read_topic
from tests.integration.security_support import open_layer
from tests.integration.test_writes import post_customer

SEALED = re.compile(rb"ce1:[A-Za-z0-9_-]+")
CHANGELOG = "core-customers-changelog"


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
    async with open_layer(settings) as layer:
        # Before the erasure the sealed copies are the customer's email: the test can tell.
        for token in tokens:
            assert await layer.data_keys.decrypt_email(merchant_id, customer_id, token) == email.lower()

    await produce(producer, codec, [gdpr(merchant_id, customer_id, at(5))])

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
