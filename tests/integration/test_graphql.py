"""GraphQL over HTTP against the worker: the same service functions as REST and gRPC."""

from __future__ import annotations

import aiohttp
from aiokafka import AIOKafkaProducer

from core_app.events.codec import EventCodec
from core_app.settings import Settings
from tests.support.api import graphql
from tests.support.events import at, insert_customers, new_merchant, produce, rfm
from tests.support.processes import WorkerProcess, eventually

RFM_QUERY = """query($m: ID!, $c: ID!) {
  getCustomerRFM(merchant_id: $m, customer_id: $c) { recency frequency monetary }
}"""
CREATE = """mutation($m: ID!, $input: CustomerInput!) {
  createCustomer(merchant_id: $m, input: $input) { id merchant_id email metadata rfm_score created_at }
}"""


async def test_query_and_mutation_go_through_the_service_layer(
    worker: WorkerProcess, settings: Settings, codec: EventCodec, producer: AIOKafkaProducer
) -> None:
    merchant_id = new_merchant(settings)
    [(customer_id, _)] = insert_customers(settings, merchant_id, 1)
    await produce(producer, codec, [rfm(merchant_id, customer_id, (2, 4, 6), at(1))])

    async def scored() -> dict | None:
        answer = await graphql(worker, RFM_QUERY, {"m": merchant_id, "c": customer_id})
        return answer["data"] if answer.get("data") else None

    assert await eventually(scored) == {"getCustomerRFM": {"recency": 2, "frequency": 4, "monetary": 6}}

    answer = await graphql(
        worker,
        CREATE,
        {"m": merchant_id, "input": {"email": "gql@example.com", "metadata": {"phone": "1", "vip": True}}},
    )
    created = answer["data"]["createCustomer"]
    assert created["merchant_id"] == merchant_id
    assert created["metadata"] == {"vip": True}
    assert created["email"] == ""


async def test_bad_input_is_an_error_naming_the_field(worker: WorkerProcess) -> None:
    answer = await graphql(worker, RFM_QUERY, {"m": "nope", "c": "also-nope"})
    [error] = answer["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "merchant_id"}


async def test_graphiql_answers_get(worker: WorkerProcess) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{worker.url}/graphql", headers={"Accept": "text/html"}) as response,
    ):
        assert response.status == 200
        assert "graphiql" in (await response.text()).lower()
