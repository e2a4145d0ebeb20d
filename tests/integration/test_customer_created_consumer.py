"""`customer.created` as another team consumes it: confluent-kafka's AvroDeserializer (the client
the other teams use) against the dev schema registry decodes the events of an API create and of an
import, both carrying the sealed email; examples/customer_created_consumer.py unseals it through
gRPC UnsealEmail with `customers:read_pii` (audited), is refused without the scope, and gets nothing
once the customer was erased."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status

from core_app.events.codec import EventCodec
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.security.principal import EDIT, READ_PII, VIEW
from core_app.settings import Settings
from examples.customer_created_consumer import CustomerCreated, decode, deserializer, open_consumer, unseal
from tests.support.auth import create_api_credentials, mint_jwt, signed_session
from tests.support.events import at, gdpr, new_merchant, produce
from tests.support.pii import audit_rows, import_file, wait_erased
from tests.support.processes import WorkerProcess


def consume_merchant(bootstrap: str, registry_url: str, merchant: str, count: int) -> list[CustomerCreated]:
    """The merchant's `customer.created` events, decoded the way other teams decode them."""
    consumer = open_consumer(bootstrap, f"campaign-test-{uuid.uuid4().hex[:8]}")
    avro = deserializer(registry_url)
    found: list[CustomerCreated] = []
    deadline = time.monotonic() + 90
    try:
        while len(found) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            event = decode(avro, message)
            if event.merchant_id == merchant:
                found.append(event)
    finally:
        consumer.close()
    return found


async def test_campaign_decodes_customer_created_and_unseals_the_email_until_erasure(
    secure_worker: WorkerProcess,
    secure_broker: str,
    registry_url: str,
    settings: Settings,
    codec: EventCodec,
    secure_producer: AIOKafkaProducer,
    data_root: Path,
) -> None:
    merchant = new_merchant(settings)
    email = f"campaign-{uuid.uuid4().hex[:8]}@example.com"
    async with signed_session(create_api_credentials(settings, merchant, [EDIT])) as http:
        body = {"merchant_id": merchant, "email": email, "metadata": {}}
        async with http.post(f"{secure_worker.url}/core/v1/customers", json=body) as response:
            assert response.status == 201, await response.text()
            created = (await response.json())["id"]
    imported = await import_file(secure_worker, settings, data_root, merchant, rows=2)
    emails = {created: email} | {cid: address for address, cid in imported.items()}

    bootstrap = secure_broker.removeprefix("kafka://")
    events = await asyncio.to_thread(consume_merchant, bootstrap, registry_url, merchant, 3)
    assert {e.customer_id for e in events} == set(emails)
    for event in events:
        assert event.sealed_email and event.sealed_email.startswith("ce1:"), event  # never plaintext
        assert emails[event.customer_id] not in event.sealed_email and event.email_hash

    channel = Channel("127.0.0.1", secure_worker.grpc_port)
    stub = CoreServiceStub(channel)
    reader = mint_jwt(merchant, [VIEW, READ_PII], subject="campaign")
    try:
        for event in events:  # the API's and the import's alike
            assert await unseal(stub, reader, event) == emails[event.customer_id]
        assert sorted(t for _, t in audit_rows(settings, created)) == ["grpc:unseal"]

        for token in (mint_jwt(merchant, [VIEW]), mint_jwt(new_merchant(settings), [VIEW, READ_PII])):
            with pytest.raises(GRPCError) as refused:
                await unseal(stub, token, events[0])
            assert refused.value.status == Status.PERMISSION_DENIED

        await produce(secure_producer, codec, [gdpr(merchant, created, at(1))])
        await wait_erased(settings, merchant, created)
        erased = next(e for e in events if e.customer_id == created)
        assert await unseal(stub, reader, erased) is None  # FAILED_PRECONDITION: do not mail
        with pytest.raises(GRPCError) as refused:
            request = pb.UnsealEmailRequest(
                merchant_id=merchant, customer_id=created, sealed_email=erased.sealed_email
            )
            await stub.UnsealEmail(request, metadata={"authorization": f"Bearer {reader}"})
        assert refused.value.status == Status.FAILED_PRECONDITION and "erased" in str(refused.value.message)
        assert len(audit_rows(settings, created)) == 1  # refusals are not PII reads
    finally:
        channel.close()
