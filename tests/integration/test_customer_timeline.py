"""The customer timeline on a worker: 20 scripted changes (an API create and update, then RFM, points
and referral events, applied one at a time) are listed newest first with their reasons on REST and
GraphQL, page by page; a GDPR erasure empties it, in the API and in PostgreSQL."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from core_app.events.codec import EventCodec
from core_app.settings import Settings
from tests.support.db import pg
from tests.support.events import at, gdpr, new_merchant, points, produce, referral, rfm
from tests.support.processes import WorkerProcess, eventually

GQL = """query($m: ID!, $c: ID!, $first: Int, $after: String) {
  customerTimeline(merchant_id: $m, customer_id: $c, first: $first, after: $after) {
    redacted retention_days entries { version kind reason source change occurred_at }
    pageInfo { hasNextPage endCursor }
  }
}"""
UPDATE = """mutation($m: ID!, $c: ID!) {
  updateCustomer(merchant_id: $m, customer_id: $c, input: {email: "", metadata: {tier_note: "x"}}) { id }
}"""


def script(merchant: str, customer: str) -> list[tuple[str, dict[str, Any], str]]:
    """18 events, each with the reason its timeline entry must give."""
    steps: list[tuple[str, dict[str, Any], str]] = []
    balance = 0
    for n in range(6):
        score = (40 - n * 5, n + 1, 100 * (n + 1))
        before = f"recency {45 - n * 5} → {score[0]} days" if n else f"recency {score[0]} days"
        steps.append((*rfm(merchant, customer, score, at(n)), before))
    for n in range(8):
        delta = -30 if n == 5 else 50
        balance += delta
        why = "reward redeemed" if delta < 0 else f"order #{1000 + n}"
        previous = balance - delta
        sign = f"{delta:+d}"
        steps.append(
            (
                *points(merchant, customer, balance, at(n), reason=why),
                f"points {previous} → {balance} ({sign}): {why}",
            )
        )
    for n in range(4):
        topic, record = referral(merchant, customer, n + 1, at(n))
        steps.append((topic, record, f"{n + 1} in total"))
    return steps


async def version_of(http: aiohttp.ClientSession, worker: WorkerProcess, merchant: str, customer: str) -> int:
    params = {"merchant_id": merchant, "customer_id": customer}
    async with http.get(f"{worker.url}/core/v1/customers", params=params) as response:
        assert response.status == 200, await response.text()
        return int((await response.json())["version"])


async def rest_timeline(
    http: aiohttp.ClientSession, worker: WorkerProcess, merchant: str, customer: str
) -> list:
    entries, cursor = [], None
    while True:
        params = {"merchant_id": merchant, "limit": "7"} | ({"cursor": cursor} if cursor else {})
        async with http.get(f"{worker.url}/core/v1/customers/{customer}/timeline", params=params) as response:
            assert response.status == 200, await response.text()
            page = await response.json()
        entries += page["entries"]
        cursor = page["next_cursor"]
        if cursor is None:
            return [page["redacted"], entries]


async def graphql(http: aiohttp.ClientSession, worker: WorkerProcess, query: str, **variables: Any) -> Any:
    async with http.post(f"{worker.url}/graphql", json={"query": query, "variables": variables}) as response:
        answer = await response.json()
    assert "errors" not in answer, answer
    return answer["data"]


async def test_twenty_scripted_changes_in_order_with_reasons_then_empty_after_erasure(
    worker: WorkerProcess, settings: Settings, codec: EventCodec, producer: AIOKafkaProducer
) -> None:
    merchant = new_merchant(settings)
    async with aiohttp.ClientSession() as http:
        body = {"merchant_id": merchant, "email": "timeline@example.com", "metadata": {"tags": ["vip"]}}
        async with http.post(f"{worker.url}/core/v1/customers", json=body) as response:
            assert response.status == 201, await response.text()
            customer = (await response.json())["id"]
        await graphql(http, worker, UPDATE, m=merchant, c=customer)
        steps = script(merchant, customer)
        for version, (topic, record, _) in enumerate(steps, start=3):  # one at a time: a fixed order
            await produce(producer, codec, [(topic, record)])

            async def applied(v: int = version) -> bool:
                return await version_of(http, worker, merchant, customer) >= v

            await eventually(applied, timeout=60, interval=0.1)

        async def persisted() -> list:
            _, entries = await rest_timeline(http, worker, merchant, customer)
            return entries if len(entries) == 20 else []

        entries = await eventually(persisted, timeout=60, interval=0.5)
        assert [e["version"] for e in entries] == list(range(20, 0, -1))  # newest first, no gap
        oldest_first = entries[::-1]
        assert [e["kind"] for e in oldest_first] == ["created", "updated"] + ["rfm"] * 6 + ["points"] * 8 + [
            "referral"
        ] * 4
        assert oldest_first[0]["reason"].startswith("created through the API (rest) by ")
        assert oldest_first[1]["reason"].startswith("profile updated through the API (graphql)")
        for entry, (topic, record, reason) in zip(oldest_first[2:], steps, strict=True):
            assert reason in entry["reason"], (entry["reason"], reason)
            assert entry["source"]["topic"] == topic and entry["event_id"] == record["event_id"]
            assert isinstance(entry["source"]["offset"], int)
        assert "timeline@example.com" not in str(entries)

        data = await graphql(http, worker, GQL, m=merchant, c=customer, first=20)
        served = data["customerTimeline"]
        assert [e["reason"] for e in served["entries"]] == [e["reason"] for e in entries]
        assert served["pageInfo"]["hasNextPage"] is False and served["retention_days"] == 365

        await produce(producer, codec, [gdpr(merchant, customer, at(99))])

        async def erased() -> bool:
            redacted, entries = await rest_timeline(http, worker, merchant, customer)
            return redacted and entries == []

        await eventually(erased, timeout=60, interval=0.5)
        data = await graphql(http, worker, GQL, m=merchant, c=customer, first=20)
        assert data["customerTimeline"]["entries"] == [] and data["customerTimeline"]["redacted"] is True

    async def purged() -> bool:  # the sink marks the row redacted: the trigger deletes the entries
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM customer_timeline WHERE merchant_id = %s AND customer_id = %s",
                (merchant, customer),
            )
            return cur.fetchone()[0] == 0

    await eventually(purged, timeout=60, interval=0.5)
