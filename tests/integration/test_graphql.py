"""GraphQL over HTTP against the worker: the same service functions as REST and gRPC."""

from __future__ import annotations

import aiohttp
from aiokafka import AIOKafkaProducer

from core_app.events.codec import EventCodec
from core_app.settings import Settings
from tests.support.api import graphql
from tests.support.events import at, insert_customers, new_merchant, produce, rfm
from tests.support.processes import WorkerProcess, eventually, metric

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


CUSTOMER = """query($m: ID!, $c: ID!) {
  getCustomer(merchant_id: $m, customer_id: $c) { id merchant_id rfm_score metadata(include: ["vip"]) email }
}"""


async def test_a_query_asked_again_gets_the_same_answer_from_the_short_path(
    worker: WorkerProcess, settings: Settings
) -> None:
    """The first request of a text takes graphql-server's path (and checks the document); the same
    text again is answered by views/graphql_fast.py. Both answer alike: data, refusals, errors."""
    merchant_id = new_merchant(settings)
    [(customer_id, _)] = insert_customers(settings, merchant_id, 1)
    other = "00000000-0000-4000-8000-000000000000"
    cases = [
        (CUSTOMER, {"m": merchant_id, "c": customer_id}),  # data
        (CUSTOMER, {"m": merchant_id, "c": other}),  # NOT_FOUND
        (CUSTOMER, {"m": "nope", "c": customer_id}),  # BAD_USER_INPUT naming merchant_id
        (CUSTOMER, {"m": merchant_id}),  # a variable missing: graphql-core's own message
        (CUSTOMER, {"m": merchant_id, "c": 7}),  # an ID given as a number
        (CUSTOMER.replace("email", "email __typename"), {"m": merchant_id, "c": customer_id}),  # not planned
    ]
    for query, variables in cases:
        before = await metric(worker, "core_graphql_short_path_total")
        first = await graphql(worker, query, variables)
        again = await graphql(worker, query, variables)
        assert again == first, (query, variables)
        assert await metric(worker, "core_graphql_short_path_total") >= before + 1, "the second was short"
    assert (await graphql(worker, CUSTOMER, cases[0][1]))["data"]["getCustomer"]["id"] == customer_id
