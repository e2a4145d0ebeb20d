"""Email readback on GetCustomer (REST, GraphQL, gRPC) against a worker with the security layer on:
the email created through the API comes back only with `customers:read_pii`, each read is audited,
and after a GDPR erasure no transport returns it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from grpclib.client import Channel

from core_app.events.codec import EventCodec
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.security.principal import EDIT, READ_PII, VIEW
from core_app.settings import Settings
from tests.auth import bearer, create_api_credentials, grpc_metadata, mint_jwt, signed_session
from tests.helpers import WorkerProcess, eventually
from tests.integration.conftest import pg
from tests.integration.events import at, gdpr, new_merchant, produce

GQL = "query($m: ID!, $c: ID!) { getCustomer(merchant_id: $m, customer_id: $c) { id email redacted } }"


@pytest.fixture
async def secure_producer(secure_broker: str) -> AsyncIterator[AIOKafkaProducer]:
    kafka = AIOKafkaProducer(bootstrap_servers=secure_broker.removeprefix("kafka://"))
    await kafka.start()
    yield kafka
    await kafka.stop()


async def read_all(
    worker: WorkerProcess, settings: Settings, merchant: str, customer: str, perms: list[str]
) -> list[tuple[str | None, bool]]:
    """(email, redacted) as REST, GraphQL and gRPC answer it."""
    creds = create_api_credentials(settings, merchant, perms)
    params = {"merchant_id": merchant, "customer_id": customer}
    async with signed_session(creds) as http:
        async with http.get(f"{worker.url}/core/v1/customers", params=params) as response:
            assert response.status == 200, await response.text()
            rest = await response.json()
    token = mint_jwt(merchant, perms)
    async with aiohttp.ClientSession() as http:
        body = {"query": GQL, "variables": {"m": merchant, "c": customer}}
        async with http.post(f"{worker.url}/graphql", json=body, headers=bearer(token)) as response:
            gql = (await response.json())["data"]["getCustomer"]
    channel = Channel("127.0.0.1", worker.grpc_port)
    try:
        reply = await CoreServiceStub(channel).GetCustomer(
            pb.GetCustomerRequest(merchant_id=merchant, customer_id=customer), metadata=grpc_metadata(token)
        )
    finally:
        channel.close()
    return [
        (rest.get("email", "absent"), rest["redacted"]),
        (gql["email"], gql["redacted"]),
        (reply.email, None),
    ]


def audit_rows(settings: Settings, customer: str) -> list[tuple[str, str]]:
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT actor, details->>'transport' FROM audit_logs"
            " WHERE action = 'customer.pii_read' AND entity_id = %s ORDER BY 2",
            (customer,),
        )
        return [tuple(row) for row in cur.fetchall()]


async def test_email_readback_needs_the_scope_is_audited_and_ends_with_erasure(
    secure_worker: WorkerProcess, settings: Settings, codec: EventCodec, secure_producer: AIOKafkaProducer
) -> None:
    merchant = new_merchant(settings)
    email = f"readback-{uuid.uuid4().hex[:8]}@example.com"
    creds = create_api_credentials(settings, merchant, [EDIT])
    async with signed_session(creds) as http:
        body = {"merchant_id": merchant, "email": email, "metadata": {}}
        async with http.post(f"{secure_worker.url}/core/v1/customers", json=body) as response:
            assert response.status == 201, await response.text()
            customer = (await response.json())["id"]

    without = await read_all(secure_worker, settings, merchant, customer, [VIEW])
    assert without == [("absent", False), ("", False), ("", None)]
    assert audit_rows(settings, customer) == []

    granted = await read_all(secure_worker, settings, merchant, customer, [VIEW, READ_PII])
    assert granted == [(email, False), (email, False), (email, None)]
    rows = audit_rows(settings, customer)
    assert sorted(transport for _, transport in rows) == ["graphql", "grpc", "rest"]
    assert all(actor in ("test-user",) or actor.startswith("api_key:") for actor, _ in rows)

    await produce(secure_producer, codec, [gdpr(merchant, customer, at(1))])

    async def erased() -> bool:
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT redacted_at FROM customers WHERE merchant_id = %s AND id = %s", (merchant, customer)
            )
            return cur.fetchone()[0] is not None

    await eventually(erased, timeout=60)
    after = await read_all(secure_worker, settings, merchant, customer, [VIEW, READ_PII])
    assert after == [(None, True), ("", True), ("", None)]
    assert len(audit_rows(settings, customer)) == 3  # nothing returned, nothing more audited
