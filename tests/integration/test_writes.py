"""API writes go to the owner agent and back: REST create, gRPC create/update, their events."""

from __future__ import annotations

import uuid

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from core_app.domain.email import email_hash
from core_app.events.codec import EventCodec
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.settings import Settings
from core_app.topics import CUSTOMER_CREATED, CUSTOMER_UPDATED
from tests.support.api import post_customer
from tests.support.events import customer_rows, get_customer, new_merchant, read_topic
from tests.support.processes import WorkerProcess


async def test_rest_create_reads_back_at_once_and_announces_the_customer(
    worker: WorkerProcess, settings: Settings, codec: EventCodec, tansu: str
) -> None:
    merchant_id = new_merchant(settings)
    email = f"New.Person+{uuid.uuid4().hex[:6]}@Example.com"
    status, created = await post_customer(
        worker,
        {"merchant_id": merchant_id, "email": email, "metadata": {"first_name": "Ana", "tier": "silver"}},
    )
    assert status == 201, created
    assert created["metadata"] == {"tier": "silver"}
    assert created["version"] == 1
    assert "email" not in created

    status, read = await get_customer(worker, merchant_id, created["id"])
    assert status == 200 and read["source"] == "table" and read["version"] == 1

    row = customer_rows(settings, merchant_id)[created["id"]]
    assert row["email"].startswith("aes256:") and email.lower() not in row["row_text"].lower()
    assert row["email_hash"] == email_hash(email, settings.email_hash_key.get_secret_value())

    key = f"{merchant_id}:{created['id']}".encode()
    [event] = await read_topic(tansu, CUSTOMER_CREATED, lambda r: r.key == key, 1)
    decoded = await codec.decode(event.value)
    assert decoded["email_hash"] == row["email_hash"]
    assert email.lower() not in event.value.decode(errors="replace").lower()


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"merchant_id": "x", "email": "a@b.co"}, 400, "merchant_id"),
        ({"merchant_id": str(uuid.uuid4())}, 400, "email"),
        ({"merchant_id": str(uuid.uuid4()), "email": "not-an-email"}, 400, "email"),
        ({"merchant_id": str(uuid.uuid4()), "email": "a@b.co", "metadata": [1]}, 400, "metadata"),
        (["not", "an", "object"], 400, "body"),
        ({"merchant_id": str(uuid.uuid4()), "email": "a@b.co"}, 404, "merchant"),
    ],
)
async def test_bad_creates_get_4xx_naming_the_field(
    worker: WorkerProcess, body: object, status: int, field: str
) -> None:
    got, answer = await post_customer(worker, body)
    assert got == status
    assert (
        answer["error"].get("field", answer["error"]["message"]).startswith(field)
        or field in answer["error"]["message"]
    )


async def test_duplicate_email_is_a_conflict_on_every_transport(
    worker: WorkerProcess, settings: Settings, stub: CoreServiceStub
) -> None:
    merchant_id = new_merchant(settings)
    status, _ = await post_customer(worker, {"merchant_id": merchant_id, "email": "twice@example.com"})
    assert status == 201
    status, answer = await post_customer(worker, {"merchant_id": merchant_id, "email": " TWICE@example.com"})
    assert (status, answer["error"]["field"]) == (409, "email")
    with pytest.raises(GRPCError) as caught:
        await stub.CreateCustomer(
            pb.CreateCustomerRequest(merchant_id=merchant_id, email="twice@example.com")
        )
    assert caught.value.status == Status.ALREADY_EXISTS


async def test_grpc_update_merges_sanitised_metadata_and_announces_it(
    worker: WorkerProcess, settings: Settings, stub: CoreServiceStub, codec: EventCodec, tansu: str
) -> None:
    merchant_id = new_merchant(settings)
    created = await stub.CreateCustomer(
        pb.CreateCustomerRequest(merchant_id=merchant_id, email="upd@example.com")
    )
    request = pb.UpdateCustomerRequest(merchant_id=merchant_id, customer_id=created.customer_id)
    request.metadata.update({"tier": "gold", "phone": "+1 555"})
    await stub.UpdateCustomer(request)

    status, read = await get_customer(worker, merchant_id, created.customer_id)
    assert status == 200
    assert read["metadata"] == {"tier": "gold"} and read["version"] == 2

    key = f"{merchant_id}:{created.customer_id}".encode()
    [event] = await read_topic(tansu, CUSTOMER_UPDATED, lambda r: r.key == key, 1)
    decoded = await codec.decode(event.value)
    assert decoded["changes"] == ["PROFILE"] and decoded["version"] == 2

    with pytest.raises(GRPCError) as caught:
        await stub.UpdateCustomer(
            pb.UpdateCustomerRequest(merchant_id=merchant_id, customer_id=str(uuid.uuid4()))
        )
    assert caught.value.status == Status.NOT_FOUND
