"""List and search on REST, GraphQL and gRPC against a worker with the security layer on: the same
pages everywhere, cursors refused across merchants, and the email only with `customers:read_pii`,
each read audited."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status

from core_app.domain.segments import SEGMENTS, segment_of
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.security.principal import READ_PII, VIEW
from core_app.settings import Settings
from tests.support.auth import bearer, create_api_credentials, grpc_metadata, mint_jwt, signed_session
from tests.support.customer_lists import (
    THRESHOLDS,
    Row,
    erase_in_sql,
    insert_rows,
    random_rows,
    set_thresholds,
)
from tests.support.db import pg
from tests.support.events import new_merchant
from tests.support.processes import WorkerProcess

GQL = """
query($m: ID!, $first: Int, $after: String, $filter: CustomerFilter) {
  customers(merchant_id: $m, first: $first, after: $after, filter: $filter) {
    edges { cursor node { id email redacted segment } }
    pageInfo { hasNextPage endCursor }
  }
}"""


@pytest.fixture(scope="module")
def shop(settings: Settings) -> tuple[str, list[Row]]:
    merchant = new_merchant(settings)
    rows = random_rows(23, seed=23)
    insert_rows(settings, merchant, rows)
    set_thresholds(settings, merchant, THRESHOLDS)
    erase_in_sql(settings, merchant, rows[3].id)
    return merchant, rows


def audit_count(settings: Settings, merchant: str, transport: str) -> int:
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM audit_logs WHERE merchant_id = %s AND action = 'customer.pii_read'"
            " AND details->>'transport' = %s",
            (merchant, transport),
        )
        return int(cur.fetchone()[0])


async def rest_pages(
    worker: WorkerProcess, settings: Settings, merchant: str, perms: list[str]
) -> list[dict]:
    creds = create_api_credentials(settings, merchant, perms)
    items: list[dict] = []
    params: dict[str, str] = {"merchant_id": merchant, "limit": "5", "fields": "email,redacted,segment"}
    async with signed_session(creds) as http:
        while True:
            async with http.get(f"{worker.url}/core/v1/customers", params=params) as response:
                assert response.status == 200, await response.text()
                page = await response.json()
            items.extend(page["customers"])
            if page["next_cursor"] is None:
                return items
            params["cursor"] = page["next_cursor"]


async def graphql_pages(worker: WorkerProcess, merchant: str, perms: list[str]) -> list[dict]:
    headers = bearer(mint_jwt(merchant, perms))
    nodes: list[dict] = []
    variables: dict[str, Any] = {"m": merchant, "first": 6}
    async with aiohttp.ClientSession() as http:
        while True:
            body = {"query": GQL, "variables": variables}
            async with http.post(f"{worker.url}/graphql", json=body, headers=headers) as response:
                answer = await response.json()
            assert "errors" not in answer, answer
            connection = answer["data"]["customers"]
            nodes.extend(edge["node"] for edge in connection["edges"])
            if not connection["pageInfo"]["hasNextPage"]:
                return nodes
            variables["after"] = connection["pageInfo"]["endCursor"]


async def grpc_stream(worker: WorkerProcess, merchant: str, perms: list[str], **fields: Any) -> list[Any]:
    channel = Channel("127.0.0.1", worker.grpc_port)
    try:
        request = pb.ListCustomersRequest(merchant_id=merchant, page_size=4, **fields)
        return list(
            await CoreServiceStub(channel).ListCustomers(
                request, metadata=grpc_metadata(mint_jwt(merchant, perms))
            )
        )
    finally:
        channel.close()


async def test_three_transports_list_the_same_customers_and_email_needs_the_scope(
    secure_worker: WorkerProcess, settings: Settings, shop: tuple[str, list[Row]]
) -> None:
    merchant, rows = shop
    expected_ids = sorted(r.id for r in rows)
    emails = {r.id: ("", True) if r is rows[3] else (r.email, False) for r in rows}

    plain_rest = await rest_pages(secure_worker, settings, merchant, [VIEW])
    plain_gql = await graphql_pages(secure_worker, merchant, [VIEW])
    plain_grpc = await grpc_stream(secure_worker, merchant, [VIEW])
    assert [i["id"] for i in plain_rest] == [n["id"] for n in plain_gql] == [r.id for r in plain_grpc]
    assert [i["id"] for i in plain_rest] == expected_ids
    assert all("email" not in i for i in plain_rest)
    assert {n["email"] for n in plain_gql} == {r.email for r in plain_grpc} == {""}
    assert sum(audit_count(settings, merchant, t) for t in ("rest", "graphql", "grpc")) == 0

    pii_rest = await rest_pages(secure_worker, settings, merchant, [VIEW, READ_PII])
    pii_gql = await graphql_pages(secure_worker, merchant, [VIEW, READ_PII])
    pii_grpc = await grpc_stream(secure_worker, merchant, [VIEW, READ_PII])
    assert {i["id"]: (i["email"] or "", i["redacted"]) for i in pii_rest} == emails
    assert {n["id"]: (n["email"], n["redacted"]) for n in pii_gql} == emails
    assert {r.id: (r.email, r.redacted) for r in pii_grpc} == emails
    for transport in ("rest", "graphql", "grpc"):
        assert audit_count(settings, merchant, transport) == len(rows) - 1  # not the erased one
    assert {n["segment"] for n in pii_gql} == {i["segment"] for i in pii_rest}


async def test_a_cursor_of_merchant_a_is_refused_for_merchant_b(
    secure_worker: WorkerProcess, settings: Settings, shop: tuple[str, list[Row]]
) -> None:
    merchant, _ = shop
    other = new_merchant(settings)
    insert_rows(settings, other, random_rows(3, seed=4))
    [first] = await grpc_stream(secure_worker, merchant, [VIEW], max_records=1)
    creds = create_api_credentials(settings, other, [VIEW])
    async with signed_session(creds) as http:
        params = {"merchant_id": other, "cursor": first.cursor}
        async with http.get(f"{secure_worker.url}/core/v1/customers", params=params) as response:
            assert response.status == 400
            assert (await response.json())["error"]["field"] == "cursor"
    with pytest.raises(GRPCError) as refused:
        await grpc_stream(secure_worker, other, [VIEW], cursor=first.cursor)
    assert refused.value.status == Status.INVALID_ARGUMENT and "cursor" in str(refused.value.message)
    headers = bearer(mint_jwt(other, [VIEW]))
    body = {"query": GQL, "variables": {"m": other, "after": first.cursor}}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{secure_worker.url}/graphql", json=body, headers=headers) as response:
            error = (await response.json())["errors"][0]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "cursor"}


async def test_rest_list_parameters_are_checked(
    secure_worker: WorkerProcess, settings: Settings, shop: tuple[str, list[Row]]
) -> None:
    merchant, rows = shop
    creds = create_api_credentials(settings, merchant, [VIEW])
    cases = [
        ({"limit": "251"}, "limit"),
        ({"customer_id": rows[0].id, "limit": "5"}, "limit"),
        ({"bogus": "1"}, "bogus"),
    ]
    async with signed_session(creds) as http:
        for params, field in cases:
            query = {"merchant_id": merchant, **params}
            async with http.get(f"{secure_worker.url}/core/v1/customers", params=query) as response:
                assert response.status == 400, await response.text()
                assert (await response.json())["error"]["field"] == field


async def test_segment_counts_on_three_transports_match_the_customers(
    secure_worker: WorkerProcess, settings: Settings, shop: tuple[str, list[Row]]
) -> None:
    merchant, rows = shop
    expected: dict[str, int] = dict.fromkeys(SEGMENTS, 0)
    for row in rows:
        expected[segment_of(row.rfm_score, THRESHOLDS)] += 1
    creds = create_api_credentials(settings, merchant, [VIEW])
    async with signed_session(creds) as http:
        params = {"merchant_id": merchant}
        async with http.get(f"{secure_worker.url}/core/v1/segments", params=params) as response:
            assert response.status == 200, await response.text()
            rest = await response.json()
    assert {s["segment"]: s["customers"] for s in rest["segments"]} == expected
    assert rest["total"] == len(rows) and rest["source"] == "local"
    token = mint_jwt(merchant, [VIEW])
    query = "query($m: ID!) { segmentCounts(merchant_id: $m) { total segments { segment customers } } }"
    async with aiohttp.ClientSession() as http:
        body = {"query": query, "variables": {"m": merchant}}
        async with http.post(f"{secure_worker.url}/graphql", json=body, headers=bearer(token)) as response:
            gql = (await response.json())["data"]["segmentCounts"]
    assert gql == {"total": rest["total"], "segments": rest["segments"]}
    channel = Channel("127.0.0.1", secure_worker.grpc_port)
    try:
        reply = await CoreServiceStub(channel).GetSegmentCounts(
            pb.GetSegmentCountsRequest(merchant_id=merchant), metadata=grpc_metadata(token)
        )
    finally:
        channel.close()
    assert {s.segment: s.customers for s in reply.segments} == expected


async def test_a_single_read_states_its_segment_and_projects_like_the_list(
    secure_worker: WorkerProcess, settings: Settings, shop: tuple[str, list[Row]]
) -> None:
    merchant, rows = shop
    row = next(r for r in rows if r.rfm_score and r.metadata.get("tags") and r is not rows[3])
    segment = segment_of(row.rfm_score, THRESHOLDS)
    creds = create_api_credentials(settings, merchant, [VIEW])
    async with signed_session(creds) as http:
        url = f"{secure_worker.url}/core/v1/customers"
        params = {"merchant_id": merchant, "customer_id": row.id}
        async with http.get(url, params=params) as response:
            assert (await response.json())["segment"] == segment
        projected = params | {"fields": "id,segment,metadata", "include": "tags,absent"}
        async with http.get(url, params=projected) as response:
            one = await response.json()
        assert one == {
            "id": row.id,
            "segment": segment,
            "metadata": {"tags": row.metadata["tags"]},
            "source": one["source"],
        }
        listed = {"merchant_id": merchant, "fields": "id,metadata", "include": "absent", "limit": "3"}
        async with http.get(url, params=listed) as response:
            assert all(item["metadata"] == {} for item in (await response.json())["customers"])
    token = mint_jwt(merchant, [VIEW])
    query = """query($m: ID!, $c: ID!) {
      getCustomer(merchant_id: $m, customer_id: $c) { segment metadata(include: ["tags"]) }
    }"""
    async with aiohttp.ClientSession() as http:
        body = {"query": query, "variables": {"m": merchant, "c": row.id}}
        async with http.post(f"{secure_worker.url}/graphql", json=body, headers=bearer(token)) as response:
            gql = (await response.json())["data"]["getCustomer"]
    assert gql == {"segment": segment, "metadata": {"tags": row.metadata["tags"]}}
    channel = Channel("127.0.0.1", secure_worker.grpc_port)
    try:
        reply = await CoreServiceStub(channel).GetCustomer(
            pb.GetCustomerRequest(merchant_id=merchant, customer_id=row.id, include=["absent"]),
            metadata=grpc_metadata(token),
        )
    finally:
        channel.close()
    assert (reply.segment, reply.id, dict(reply.metadata)) == (segment, row.id, {})
