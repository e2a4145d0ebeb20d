"""Two workers in one group on Tansu (tests/e2e/conftest.py): a read on either worker returns the fresh
table value, routed to the worker that owns the key's partition, without waiting for the PostgreSQL sink."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from grpclib.client import Channel

from core_app.events.codec import EventCodec
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.settings import Settings
from tests.support.events import at, get_customer, insert_customers, new_merchant, produce, rfm
from tests.support.processes import WorkerProcess, eventually


async def test_reads_on_either_worker_see_the_owners_fresh_state(
    two_workers: tuple[WorkerProcess, WorkerProcess], settings: Settings, codec: EventCodec, pair_tansu: str
) -> None:
    first, second = two_workers
    merchant_id = new_merchant(settings)
    customers = [cid for cid, _ in insert_customers(settings, merchant_id, 24)]
    producer = AIOKafkaProducer(bootstrap_servers=pair_tansu.removeprefix("kafka://"))
    await producer.start()
    try:
        await produce(
            producer, codec, [rfm(merchant_id, c, (n, 1, n * 10), at(1)) for n, c in enumerate(customers)]
        )
    finally:
        await producer.stop()

    sources: dict[str, set[str]] = {first.name: set(), second.name: set()}

    async def everyone_fresh_everywhere() -> bool:
        for n, customer_id in enumerate(customers):
            for worker in (first, second):
                status, body = await get_customer(worker, merchant_id, customer_id)
                if status != 200 or body["rfm_score"].get("monetary") != n * 10:
                    return False
                sources[worker.name].add(body["source"])
        return True

    await eventually(everyone_fresh_everywhere, timeout=90, interval=1)
    # 24 keys over 4 partitions: each worker owns some and asks the other for the rest.
    assert sources[first.name] == {"table", "owner"}
    assert sources[second.name] == {"table", "owner"}

    for worker in (first, second):
        channel = Channel("127.0.0.1", worker.grpc_port)
        try:
            stub = CoreServiceStub(channel)
            for n, customer_id in enumerate(customers):
                reply = await stub.GetCustomerRFM(
                    pb.GetCustomerRFMRequest(merchant_id=merchant_id, customer_id=customer_id)
                )
                assert reply.rfm_score.monetary == n * 10
        finally:
            channel.close()


async def test_a_write_on_one_worker_is_read_at_once_on_both(
    two_workers: tuple[WorkerProcess, WorkerProcess], settings: Settings
) -> None:
    import aiohttp

    first, second = two_workers
    merchant_id = new_merchant(settings)
    created: list[dict] = []
    async with aiohttp.ClientSession() as http:
        for n in range(8):  # enough customers that both workers own some
            writer = (first, second)[n % 2]
            body = {"merchant_id": merchant_id, "email": f"rw{n}@example.com", "metadata": {"n": n}}
            async with http.post(f"{writer.url}/core/v1/customers", json=body) as response:
                assert response.status == 201, await response.text()
                created.append(await response.json())
    sources = set()
    for customer in created:
        for reader in (first, second):
            status, body = await get_customer(reader, merchant_id, customer["id"])
            assert status == 200
            assert body["metadata"] == customer["metadata"]
            sources.add(body["source"])
    assert sources == {"table", "owner"}
