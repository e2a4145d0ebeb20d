"""The in-process fan-out: filtering, bounded queues, dropping a client that falls behind."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

from core_app.fanout.hub import FanoutHub, Subscription, UpdateFilter
from core_app.fanout.messages import customer_update, json_update, merchant_of_key

M1, M2 = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
IMPORT = "33333333-3333-3333-3333-333333333333"
C1 = "44444444-4444-4444-4444-444444444444"


def progress(merchant_id: str, processed: int, import_id: str = IMPORT) -> dict:
    return {
        "type": "import.progress",
        "merchant_id": merchant_id,
        "import_id": import_id,
        "processed": processed,
    }


async def take(subscription: Subscription, count: int) -> list[dict]:
    return [await asyncio.wait_for(anext(subscription), 1) for _ in range(count)]


async def test_each_update_reaches_only_the_subscriptions_it_matches() -> None:
    hub = FanoutHub(queue_size=8)
    everything = hub.subscribe(UpdateFilter(M1), "websocket")
    one_import = hub.subscribe(UpdateFilter(M1, frozenset({"import.progress"}), import_id=IMPORT), "graphql")
    customers = hub.subscribe(UpdateFilter(M1, frozenset({"customer.updated"})), "graphql")
    other_merchant = hub.subscribe(UpdateFilter(M2), "websocket")

    assert hub.dispatch(progress(M1, 1)) == 2
    assert hub.dispatch(progress(M1, 2, import_id="another")) == 1
    assert hub.dispatch({"type": "customer.updated", "merchant_id": M1, "customer_id": "c"}) == 2
    assert [u.get("processed") for u in await take(everything, 3)] == [1, 2, None]
    assert [u["processed"] for u in await take(one_import, 1)] == [1]
    assert [u["customer_id"] for u in await take(customers, 1)] == ["c"]
    for subscription in (everything, one_import, customers, other_merchant):
        subscription.close()
    assert [u async for u in other_merchant] == []
    assert not hub.watches(M1)


async def test_a_client_that_falls_behind_is_dropped_and_the_others_go_on() -> None:
    hub = FanoutHub(queue_size=3)
    drops: list[str] = []
    slow = hub.subscribe(UpdateFilter(M1), "websocket", on_drop=lambda: drops.append("slow"))
    fast = hub.subscribe(UpdateFilter(M1), "websocket")
    received: list[int] = []

    async def keep_up() -> None:
        async for update in fast:
            received.append(update["processed"])

    reader = asyncio.create_task(keep_up())
    for n in range(10):
        hub.dispatch(progress(M1, n))  # never waits, whoever is behind
        await asyncio.sleep(0)
    assert drops == ["slow"]
    assert slow.dropped and slow.ended.is_set()
    assert [u async for u in slow] == []  # a dropped subscription yields nothing more
    fast.close()
    await reader
    assert received == list(range(10))


async def test_closing_wakes_a_waiting_reader() -> None:
    hub = FanoutHub(queue_size=3)
    subscription = hub.subscribe(UpdateFilter(M1), "graphql")
    reader = asyncio.create_task(anext(subscription, "ended"))
    await asyncio.sleep(0)
    hub.close_all()
    assert await reader == "ended"
    assert not subscription.dropped


def test_customer_updated_becomes_a_json_message() -> None:
    record = {
        "event_id": "e",
        "customer_id": uuid.UUID(C1),  # as fastavro reads logicalType uuid
        "merchant_id": uuid.UUID(M1),
        "rfm_score": {"recency": 1, "frequency": 2, "monetary": 3},
        "metadata": '{"points": {"balance": 5}}',
        "version": 7,
        "changes": ["RFM"],
        "redacted": False,
        "updated_at": datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
    }
    message = customer_update(record)
    assert message == {
        "type": "customer.updated",
        "merchant_id": M1,
        "customer_id": C1,
        "version": 7,
        "rfm_score": {"recency": 1, "frequency": 2, "monetary": 3},
        "metadata": {"points": {"balance": 5}},
        "changes": ["RFM"],
        "redacted": False,
        "updated_at": "2026-01-02T03:04:05.006Z",
    }
    json.dumps(message)


def test_json_updates_need_a_type_and_a_merchant() -> None:
    assert json_update(json.dumps(progress(M1, 1)).encode()) == progress(M1, 1)
    for bad in (b"", b"not json", b"[1]", b'{"type": "x"}', b'{"merchant_id": "m"}'):
        assert json_update(bad) is None
    assert merchant_of_key(f"{M1}:c".encode()) == M1
    assert merchant_of_key(M1.encode()) == M1
    assert merchant_of_key(None) is None
