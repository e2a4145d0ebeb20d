"""PII readback helpers: the email as REST, GraphQL and gRPC answer it, the audit rows of PII reads,
an erasure awaited in PostgreSQL, and customers imported from a file on a secured worker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from grpclib.client import Channel

from core_app.domain.email import email_hash
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.security.principal import EDIT, VIEW
from core_app.settings import Settings
from tests.support.auth import bearer, create_api_credentials, grpc_metadata, mint_jwt, signed_session
from tests.support.db import pg
from tests.support.imports import import_root, shopify_csv
from tests.support.processes import WorkerProcess, eventually


@pytest.fixture
async def secure_producer(secure_broker: str) -> AsyncIterator[AIOKafkaProducer]:
    """A producer on the secure worker's broker."""
    kafka = AIOKafkaProducer(bootstrap_servers=secure_broker.removeprefix("kafka://"))
    await kafka.start()
    yield kafka
    await kafka.stop()


GQL = "query($m: ID!, $c: ID!) { getCustomer(merchant_id: $m, customer_id: $c) { id email redacted } }"


async def read_all(
    worker: WorkerProcess, settings: Settings, merchant: str, customer: str, perms: list[str]
) -> list[tuple[str | None, bool | None]]:
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


async def wait_erased(settings: Settings, merchant: str, customer: str) -> None:
    async def erased() -> bool:
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT redacted_at FROM customers WHERE merchant_id = %s AND id = %s", (merchant, customer)
            )
            return cur.fetchone()[0] is not None

    await eventually(erased, timeout=60)


async def import_file(
    worker: WorkerProcess, settings: Settings, data_root: Path, merchant: str, rows: int
) -> dict[str, str]:
    """A Shopify export of `rows` customers imported through the signed REST API (file:// under the
    worker's IMPORT_FILE_ROOT); email -> the customer id the import gave it."""
    data, _ = shopify_csv(rows, bad_every=10**6)
    path = import_root(data_root) / f"pii-{merchant}.csv"
    path.write_bytes(data)
    creds = create_api_credentials(settings, merchant, [EDIT, VIEW])
    async with signed_session(creds) as http:
        body = {"merchant_id": merchant, "source": "shopify", "file_url": path.as_uri()}
        async with http.post(f"{worker.url}/core/v1/imports", json=body) as response:
            assert response.status in (200, 201, 202), await response.text()
            import_id = (await response.json())["import_id"]

        async def completed() -> bool:
            params = {"merchant_id": merchant, "import_id": import_id}
            async with http.get(f"{worker.url}/core/v1/imports", params=params) as response:
                log = await response.json()
            assert log.get("status") != "failed", log
            return log.get("status") == "completed"

        await eventually(completed, timeout=120, interval=0.5)
    key = settings.email_hash_key.get_secret_value()
    emails = [f"customer{i:06d}@bulk.example.com" for i in range(rows)]
    return {email: str(uuid.uuid5(uuid.UUID(import_id), email_hash(email, key))) for email in emails}
