"""Live updates across workers: a change applied by worker B reaches the GraphQL subscription (a real
`graphql-transport-ws` client, gql) and the WebSocket stream of clients connected to worker A; an
import's progress published once reaches clients on both workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from core_app.events.codec import EventCodec
from core_app.settings import Settings
from tests.support.events import at, get_customer, insert_customers, new_merchant, produce, rfm
from tests.support.live import new_id, next_of_type, open_stream, produce_updates, progress
from tests.support.processes import WorkerProcess, eventually, metric

ON_CUSTOMER_UPDATE = """subscription($m: ID!) {
  onCustomerUpdate(merchant_id: $m) { id merchant_id email rfm_score metadata created_at updated_at }
}"""
ON_IMPORT_PROGRESS = """subscription($m: ID!, $i: ID!) {
  onImportProgress(merchant_id: $m, import_id: $i) { import_id merchant_id status record_count }
}"""


@asynccontextmanager
async def gql_subscription(
    worker: WorkerProcess, query: str, variables: dict[str, Any]
) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    """Results of a subscription by gql's WebSocket transport, on the graphql-transport-ws protocol."""
    transport = WebsocketsTransport(
        url=f"ws://127.0.0.1:{worker.http_port}/graphql",
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    results: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    baseline = await metric(worker, "core_fanout_subscribers", transport="graphql")
    async with Client(transport=transport) as session:

        async def collect() -> None:
            request = GraphQLRequest(query, variable_values=variables)
            async for result in session.subscribe(request):
                await results.put(result)

        task = asyncio.create_task(collect())
        try:
            await wait_for_gauge(worker, "graphql", baseline + 1)
            yield results
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def wait_for_gauge(worker: WorkerProcess, transport: str, value: float) -> None:
    async def reached() -> bool:
        return await metric(worker, "core_fanout_subscribers", transport=transport) >= value

    await eventually(reached, timeout=30)


async def customer_owned_by(
    owner: WorkerProcess, other: WorkerProcess, merchant_id: str, customers: list[str]
) -> str:
    """A customer whose partition `owner` holds: it answers from its table, the other asks it."""

    async def find() -> str | None:
        for customer_id in customers:
            status, mine = await get_customer(owner, merchant_id, customer_id)
            _, theirs = await get_customer(other, merchant_id, customer_id)
            if status == 200 and mine["source"] == "table" and theirs["source"] == "owner":
                return customer_id
        return None

    return await eventually(find, timeout=90, interval=1)


async def test_a_change_applied_on_b_reaches_subscribers_on_a(
    two_workers: tuple[WorkerProcess, WorkerProcess], settings: Settings, codec: EventCodec, pair_tansu: str
) -> None:
    a, b = two_workers
    merchant_id = new_merchant(settings)
    customers = [cid for cid, _ in insert_customers(settings, merchant_id, 8)]
    producer = AIOKafkaProducer(bootstrap_servers=pair_tansu.removeprefix("kafka://"))
    await producer.start()
    try:
        await produce(
            producer, codec, [rfm(merchant_id, c, (1, 1, n), at(1)) for n, c in enumerate(customers)]
        )
        on_b = await customer_owned_by(b, a, merchant_id, customers)

        async with (
            gql_subscription(a, ON_CUSTOMER_UPDATE, {"m": merchant_id}) as results,
            aiohttp.ClientSession() as http,
        ):
            stream = await open_stream(http, a, merchant_id)
            await produce(producer, codec, [rfm(merchant_id, on_b, (9, 9, 999), at(2))])

            # Updates from the first round of events may still be on their way: skip them.
            async def from_stream() -> dict[str, Any]:
                while True:
                    message = await next_of_type(stream, "customer.updated")
                    if message["rfm_score"]["monetary"] == 999:
                        return message

            async def from_subscription() -> dict[str, Any]:
                while True:
                    update = (await results.get())["onCustomerUpdate"]
                    if update["rfm_score"]["monetary"] == 999:
                        return update

            message = await asyncio.wait_for(from_stream(), 30)
            assert (message["customer_id"], message["merchant_id"]) == (on_b, merchant_id)
            assert message["rfm_score"] == {"recency": 9, "frequency": 9, "monetary": 999}
            assert message["changes"] == ["RFM"] and message["version"] >= 2

            update = await asyncio.wait_for(from_subscription(), 30)
            assert (update["id"], update["merchant_id"], update["email"]) == (on_b, merchant_id, "")
            assert update["created_at"] and update["updated_at"] == message["updated_at"]
            await stream.close()
    finally:
        await producer.stop()


async def test_import_progress_published_once_reaches_clients_on_both_workers(
    two_workers: tuple[WorkerProcess, WorkerProcess], pair_tansu: str
) -> None:
    a, b = two_workers
    merchant_id, import_id = new_id(), new_id()
    producer = AIOKafkaProducer(bootstrap_servers=pair_tansu.removeprefix("kafka://"))
    await producer.start()
    try:
        async with (
            gql_subscription(b, ON_IMPORT_PROGRESS, {"m": merchant_id, "i": import_id}) as on_b,
            aiohttp.ClientSession() as http,
        ):
            stream_on_a = await open_stream(http, a, merchant_id)
            await produce_updates(producer, [progress(merchant_id, import_id, 250)])

            assert await next_of_type(stream_on_a, "import.progress") == progress(merchant_id, import_id, 250)
            assert (await asyncio.wait_for(on_b.get(), 30))["onImportProgress"] == {
                "import_id": import_id,
                "merchant_id": merchant_id,
                "status": "processing",
                "record_count": 250,
            }
            await stream_on_a.close()
    finally:
        await producer.stop()
