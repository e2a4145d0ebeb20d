"""gRPC reads and the table -> Redis -> PostgreSQL read path, against a running worker."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from grpclib import GRPCError
from grpclib.const import Status

from core_app.events.codec import EventCodec
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.settings import Settings
from tests.support.events import at, get_customer, insert_customers, new_merchant, produce, rfm
from tests.support.processes import WorkerProcess, eventually


async def test_get_customer_rfm_answers_from_the_table(
    stub: CoreServiceStub, settings: Settings, codec: EventCodec, producer: AIOKafkaProducer
) -> None:
    merchant_id = new_merchant(settings)
    [(customer_id, _)] = insert_customers(settings, merchant_id, 1, metadata='{"tier": "gold"}')
    await produce(producer, codec, [rfm(merchant_id, customer_id, (4, 8, 15), at(1))])
    request = pb.GetCustomerRFMRequest(merchant_id=merchant_id, customer_id=customer_id)

    async def scored() -> pb.GetCustomerRFMResponse | None:
        try:
            return await stub.GetCustomerRFM(request, timeout=5)
        except GRPCError as exc:
            assert exc.status == Status.NOT_FOUND
            return None

    reply = await eventually(scored)
    assert (reply.rfm_score.recency, reply.rfm_score.frequency, reply.rfm_score.monetary) == (4, 8, 15)
    full = await stub.GetCustomer(pb.GetCustomerRequest(merchant_id=merchant_id, customer_id=customer_id))
    assert dict(full.metadata) == {"tier": "gold"}
    assert full.version == 1
    assert full.email == ""


# Fixed ids: parameters must be the same in every collecting process (pytest-xdist).
UNKNOWN_MERCHANT = "0c9e8d7f-6a5b-4c3d-9e1f-2a3b4c5d6e03"
UNKNOWN_CUSTOMER = "9f8e7d6c-5b4a-4392-8a1b-0c2d3e4f5a04"


@pytest.mark.parametrize(
    ("merchant_id", "customer_id", "status", "text"),
    [
        ("not-a-uuid", "2f1c3a9e-6b1d-4c55-9a57-0d2a1f6c9e01", Status.INVALID_ARGUMENT, "merchant_id"),
        ("7d0b8c44-1e2f-4a3b-8c9d-5e6f7a8b9c02", "", Status.INVALID_ARGUMENT, "customer_id"),
        (
            "0c9e8d7f-6a5b-4c3d-9e1f-2a3b4c5d6e03",
            "9f8e7d6c-5b4a-4392-8a1b-0c2d3e4f5a04",
            Status.NOT_FOUND,
            "not found",
        ),
    ],
)
async def test_bad_or_unknown_ids_get_grpc_status_codes(
    stub: CoreServiceStub, merchant_id: str, customer_id: str, status: Status, text: str
) -> None:
    with pytest.raises(GRPCError) as caught:
        await stub.GetCustomerRFM(pb.GetCustomerRFMRequest(merchant_id=merchant_id, customer_id=customer_id))
    assert caught.value.status == status
    assert text in (caught.value.message or "")


async def test_import_without_a_file_url_is_an_invalid_argument(stub: CoreServiceStub) -> None:
    with pytest.raises(GRPCError) as caught:
        await stub.ImportCustomers(pb.ImportCustomersRequest(merchant_id=str(uuid.uuid4()), source="custom"))
    assert caught.value.status == Status.INVALID_ARGUMENT
    assert (caught.value.message or "").startswith("file_url:")


async def test_untouched_customer_is_read_from_postgres_then_redis(
    worker: WorkerProcess, settings: Settings, codec: EventCodec, producer: AIOKafkaProducer
) -> None:
    merchant_id = new_merchant(settings)
    [(customer_id, _)] = insert_customers(settings, merchant_id, 1)
    first = await get_customer(worker, merchant_id, customer_id)
    second = await get_customer(worker, merchant_id, customer_id)
    assert (first[0], first[1]["source"]) == (200, "postgres")
    assert (second[0], second[1]["source"]) == (200, "redis")
    assert second[1]["rfm_score"] == first[1]["rfm_score"] == {}

    # A change goes to the table, and the sink drops the now stale Redis entry.
    await produce(producer, codec, [rfm(merchant_id, customer_id, (1, 2, 3), at(1))])

    async def fresh_from_table() -> bool:
        status, body = await get_customer(worker, merchant_id, customer_id)
        return status == 200 and body["source"] == "table" and body["rfm_score"]["monetary"] == 3

    await eventually(fresh_from_table)
    import redis.asyncio as aioredis

    redis = aioredis.Redis.from_url(settings.redis_dsn)
    key = f"{settings.redis_key_prefix}customer:{merchant_id}:{customer_id}"

    async def cache_dropped() -> bool:
        return await redis.get(key) is None

    await eventually(cache_dropped)
    await redis.aclose()
