"""Email readback on GetCustomer (REST, GraphQL, gRPC) against a worker with the security layer on:
the email created through the API, or imported from a file, comes back only with
`customers:read_pii`, each read is audited, and after a GDPR erasure no transport returns it."""

from __future__ import annotations

import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

from core_app.events.codec import EventCodec
from core_app.security.principal import EDIT, READ_PII, VIEW
from core_app.settings import Settings
from tests.support.auth import create_api_credentials, signed_session
from tests.support.events import at, gdpr, new_merchant, produce
from tests.support.pii import audit_rows, import_file, read_all, wait_erased
from tests.support.processes import WorkerProcess


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

    await wait_erased(settings, merchant, customer)
    after = await read_all(secure_worker, settings, merchant, customer, [VIEW, READ_PII])
    assert after == [(None, True), ("", True), ("", None)]
    assert len(audit_rows(settings, customer)) == 3  # nothing returned, nothing more audited


async def test_imported_customers_email_on_every_transport_only_with_the_scope(
    secure_worker: WorkerProcess,
    settings: Settings,
    codec: EventCodec,
    secure_producer: AIOKafkaProducer,
    data_root: Path,
) -> None:
    merchant = new_merchant(settings)
    imported = await import_file(secure_worker, settings, data_root, merchant, rows=3)
    email, customer = next(iter(imported.items()))

    without = await read_all(secure_worker, settings, merchant, customer, [VIEW])
    assert without == [("absent", False), ("", False), ("", None)]
    granted = await read_all(secure_worker, settings, merchant, customer, [VIEW, READ_PII])
    assert granted == [(email, False), (email, False), (email, None)]
    assert sorted(transport for _, transport in audit_rows(settings, customer)) == ["graphql", "grpc", "rest"]

    await produce(secure_producer, codec, [gdpr(merchant, customer, at(1))])
    await wait_erased(settings, merchant, customer)
    after = await read_all(secure_worker, settings, merchant, customer, [VIEW, READ_PII])
    assert after == [(None, True), ("", True), ("", None)]
    assert len(audit_rows(settings, customer)) == 3
