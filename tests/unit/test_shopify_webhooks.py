"""Shopify webhooks on fakes (tests/unit/fakes.py): accepting (HMAC, headers, dedupe, staleness,
hand-off), the agent's handling (unreadable records and failures dead-lettered), and the work of
each topic, the compliance ones and the shop purge included."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from core_app import topics
from core_app.domain.errors import ValidationFailed
from core_app.domain.gdpr import DEADLINE, export_id_for, request_id
from core_app.domain.shopify import sign_body
from core_app.security.errors import Unauthenticated
from core_app.services import gdpr_requests
from core_app.services.shopify_purge import purge_shop
from core_app.services.shopify_webhooks import (
    WebhookDelivery,
    accept_webhook,
    handle_message,
    process_webhook,
)
from tests.unit.fakes import SHOPIFY_KEK, SHOPIFY_SECRET, FakeMerchants, FakeRecordPublisher, shopify_deps

SHOP = "unit-shop.myshopify.com"


def headers(body: bytes, topic: str = "customers/redact", **changes: str) -> dict[str, str]:
    base = {
        "X-Shopify-Hmac-Sha256": sign_body(SHOPIFY_SECRET, body),
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Webhook-Id": "hook-1",
        "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
    }
    return base | changes


BODY = json.dumps({"customer": {"id": 7, "email": "Ann@Example.com"}}).encode()


async def test_a_signed_delivery_is_handed_off_sealed() -> None:
    deps = shopify_deps()
    assert await accept_webhook(deps, "customers/redact", headers(BODY), BODY) == "accepted"
    [(key, message)] = deps.publish.on(topics.SHOPIFY_WEBHOOKS)
    assert key == SHOP and isinstance(message, bytes) and b"Ann@Example.com" not in message
    delivery = WebhookDelivery.from_message(SHOPIFY_KEK, message)
    assert delivery.payload == json.loads(BODY) and delivery.webhook_id == "hook-1"


@pytest.mark.parametrize(
    "changes",
    [{"X-Shopify-Hmac-Sha256": sign_body("another-secret", BODY)}, {"X-Shopify-Hmac-Sha256": ""}],
    ids=["wrong-hmac", "no-hmac"],
)
async def test_a_bad_hmac_is_401_and_nothing_is_handed_off(changes: dict[str, str]) -> None:
    deps = shopify_deps()
    with pytest.raises(Unauthenticated):
        await accept_webhook(deps, "customers/redact", headers(BODY, **changes), BODY)
    assert deps.publish.sent == [] and deps.redis.values == {}


async def test_the_hmac_is_over_the_raw_body() -> None:
    reencoded = json.dumps(json.loads(BODY), indent=2).encode()
    with pytest.raises(Unauthenticated):
        await accept_webhook(shopify_deps(), "customers/redact", headers(BODY), reencoded)


@pytest.mark.parametrize(
    ("changes", "body"),
    [
        ({"X-Shopify-Topic": "shop/redact"}, BODY),
        ({"X-Shopify-Shop-Domain": "evil.example.com"}, BODY),
        ({"X-Shopify-Webhook-Id": ""}, BODY),
        ({"X-Shopify-Triggered-At": "yesterday"}, BODY),
        ({}, b"[1, 2]"),
    ],
    ids=["topic-mismatch", "foreign-shop", "no-id", "bad-time", "not-an-object"],
)
async def test_a_malformed_delivery_is_400(changes: dict[str, str], body: bytes) -> None:
    signed = headers(body, **changes) | {"X-Shopify-Hmac-Sha256": sign_body(SHOPIFY_SECRET, body)}
    with pytest.raises(ValidationFailed):
        await accept_webhook(shopify_deps(), "customers/redact", signed, body)


async def test_a_redelivery_is_a_duplicate_and_a_stale_one_is_dropped() -> None:
    deps = shopify_deps()
    assert await accept_webhook(deps, "customers/redact", headers(BODY), BODY) == "accepted"
    assert await accept_webhook(deps, "customers/redact", headers(BODY), BODY) == "duplicate"
    old = datetime.fromtimestamp(time.time() - 86_400, UTC).isoformat()
    stale = headers(BODY, **{"X-Shopify-Triggered-At": old, "X-Shopify-Webhook-Id": "hook-2"})
    assert await accept_webhook(deps, "customers/redact", stale, BODY) == "stale"
    assert len(deps.publish.sent) == 1


async def test_an_unknown_topic_is_ignored() -> None:
    deps = shopify_deps()
    assert await accept_webhook(deps, "orders/create", headers(BODY, "orders/create"), BODY) == "ignored"
    assert deps.publish.sent == []


async def test_a_failed_hand_off_releases_the_id_so_the_retry_is_processed() -> None:
    deps = shopify_deps(publish=FakeRecordPublisher(fail=ConnectionError("broker down")))
    with pytest.raises(ConnectionError):
        await accept_webhook(deps, "customers/redact", headers(BODY), BODY)
    assert deps.redis.values == {}
    deps.publish.fail = None
    assert await accept_webhook(deps, "customers/redact", headers(BODY), BODY) == "accepted"


def delivery(topic: str, payload: dict[str, Any], triggered_at: float | None = None) -> WebhookDelivery:
    return WebhookDelivery(topic, SHOP, "hook-9", triggered_at, payload)


async def test_app_uninstalled_uninstalls_the_merchant() -> None:
    store = FakeMerchants()
    merchant = store.add(SHOP)
    store.tokens[merchant["id"]] = "shpat"
    deps = shopify_deps(store=store)
    assert await process_webhook(deps, delivery("app/uninstalled", {}, time.time())) == "done"
    assert store.merchants[SHOP]["status"] == "uninstalled" and store.tokens == {}
    unknown = WebhookDelivery("app/uninstalled", "other.myshopify.com", "h", None, {})
    assert await process_webhook(deps, unknown) == "skipped"


async def test_customers_redact_requests_the_erasure_and_tracks_it_until_applied() -> None:
    store = FakeMerchants()
    merchant = store.add(SHOP)
    store.customers[merchant["id"]] = {"ann@example.com": "c-1"}
    deps = shopify_deps(store=store)
    assert await process_webhook(deps, delivery("customers/redact", json.loads(BODY))) == "done"
    [(key, record)] = deps.publish.on(topics.GDPR_REQUEST_CREATED)
    assert key == f"{merchant['id']}:c-1" and record["request_type"] == "REDACT"
    requests = deps.gdpr.requests
    tracked = request_id("shopify", "redact", f"{SHOP}:hook-9")
    assert record["request_id"] == tracked and requests.status(tracked) == "open"  # done once applied
    assert (
        requests.rows[tracked]["request"].deadline - requests.rows[tracked]["request"].received_at == DEADLINE
    )


@pytest.mark.parametrize(
    "payload", [{"customer": {"email": "nobody@example.com"}}, {"customer": {"email": "no-at"}}, {}]
)
async def test_customers_redact_of_no_known_customer_is_done_at_once(payload: dict[str, Any]) -> None:
    store = FakeMerchants()
    store.add(SHOP)
    deps = shopify_deps(store=store)
    assert await process_webhook(deps, delivery("customers/redact", payload)) == "skipped"
    assert deps.publish.sent == []
    [row] = deps.gdpr.requests.rows.values()
    assert row["status"] == "done" and row["result"] == {"customer_found": False}


async def test_a_data_request_builds_the_export_and_announces_it() -> None:
    store = FakeMerchants()
    merchant = store.add(SHOP)
    store.customers[merchant["id"]] = {"ann@example.com": "c-1"}
    deps = shopify_deps(store=store)
    payload = {"customer": {"id": 7, "email": "ann@example.com"}, "data_request": {"id": 99}}
    assert await process_webhook(deps, delivery("customers/data_request", payload)) == "done"
    tracked = request_id("shopify", "access", f"{SHOP}:99")
    row = deps.gdpr.requests.rows[tracked]
    assert row["status"] == "done" and row["result"]["export_id"] == export_id_for(tracked)
    [(key, ready)] = deps.publish.on(topics.GDPR_EXPORT_READY)
    assert key == merchant["id"] and ready["external_id"] == "99" and ready["source"] == "SHOPIFY"
    assert "ann@example.com" not in json.dumps(ready, default=str)


async def test_shop_redact_shreds_then_deletes_then_tombstones_with_counts() -> None:
    store = FakeMerchants()
    merchant = store.add(SHOP, status="uninstalled")
    deps = shopify_deps(store=store)
    assert deps.gdpr is not None
    deps.gdpr.shop_data.customers[merchant["id"]] = ["c-1", "c-2"]
    m = merchant["id"]
    deps.redis.values |= {
        f"t:shopify:{{{SHOP}}}:state:x": "1",
        f"t:shopify:{{{SHOP}}}:webhook:hook-1": "1",  # a dedupe id: kept, a redelivery stays a duplicate
        "t:shopify:{other}:state:y": "1",
        f"t:feature_flags:{m}": "1",
        f"t:settings:{m}": "1",
        f"t:customer:{m}:c-1": "1",
        f"t:rate_limit:{{{m}}}:GET:/core/v1/customers": "1",
        "t:customer:other:c-9": "1",
    }
    assert await process_webhook(deps, delivery("shop/redact", {})) == "done"
    assert deps.gdpr.shop_data.calls == ["shred", "delete", "tables"]
    assert set(deps.redis.values) == {
        "t:customer:other:c-9",
        f"t:shopify:{{{SHOP}}}:webhook:hook-1",
        "t:shopify:{other}:state:y",
    }
    [(_, _, action, _, details)] = store.audits
    assert action == "merchant.purged"
    assert details["customers_deleted"] == 2 and details["data_keys_shredded"] == 2
    assert details["api_keys_deleted"] == 2 and details["table_customers_tombstoned"] == 1
    assert details["redis_keys_deleted"] == 5
    [row] = deps.gdpr.requests.rows.values()
    assert row["status"] == "done" and row["result"]["customers_deleted"] == 2


async def test_a_purge_step_that_fails_is_retried_and_its_counts_add_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gdpr_requests, "BACKOFF_SECONDS", 0.0)
    store = FakeMerchants()
    merchant = store.add(SHOP, status="uninstalled")
    deps = shopify_deps(store=store)
    assert deps.gdpr is not None
    deps.gdpr.shop_data.customers[merchant["id"]] = ["c-1", "c-2"]
    deps.gdpr.table_purges.fail_times = 1
    assert await process_webhook(deps, delivery("shop/redact", {})) == "done"
    [row] = deps.gdpr.requests.rows.values()
    assert row["status"] == "done" and row["attempts"] == 2
    assert row["result"]["customers_deleted"] == 2  # from the first attempt, the second found none


async def test_a_purge_that_keeps_failing_is_reported_and_dead_lettered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gdpr_requests, "BACKOFF_SECONDS", 0.0)
    store = FakeMerchants()
    store.add(SHOP, status="uninstalled")
    deps, rejects = shopify_deps(store=store), Rejects()
    assert deps.gdpr is not None
    deps.gdpr.table_purges.fail_times = 99
    raw = delivery("shop/redact", {}).to_message(SHOPIFY_KEK)
    assert await handle_message(deps, raw, rejects) == "failed"
    [row] = deps.gdpr.requests.rows.values()
    assert row["status"] == "failed" and row["attempts"] == gdpr_requests.ATTEMPTS
    assert "did not confirm" in row["error"] and rejects.reasons[0][0] == "failed"


async def test_shop_redact_never_purges_a_reinstalled_or_unknown_shop() -> None:
    store = FakeMerchants()
    store.add(SHOP)
    deps = shopify_deps(store=store)
    assert await purge_shop(deps, SHOP, "hook-9") is None
    assert await purge_shop(deps, "gone.myshopify.com", "hook-9") is None
    assert deps.gdpr is not None and deps.gdpr.shop_data.calls == []
    assert deps.publish.sent == [] and store.audits == []


class Rejects:
    def __init__(self) -> None:
        self.reasons: list[tuple[str, str]] = []

    async def __call__(self, reason: str, detail: str) -> None:
        self.reasons.append((reason, detail))


async def test_the_agent_processes_a_readable_record() -> None:
    store = FakeMerchants()
    store.add(SHOP)
    deps, rejects = shopify_deps(store=store), Rejects()
    raw = delivery("app/uninstalled", {}).to_message(SHOPIFY_KEK)
    assert await handle_message(deps, raw, rejects) == "done"
    assert rejects.reasons == []


@pytest.mark.parametrize(
    "raw",
    [b"not json", json.dumps({"topic": "app/uninstalled"}).encode(), None],
    ids=["not-json", "no-payload", "sealed-under-another-key"],
)
async def test_the_agent_dead_letters_an_unreadable_record(raw: bytes | None) -> None:
    if raw is None:
        raw = delivery("app/uninstalled", {}).to_message(bytes(32))
    rejects = Rejects()
    assert await handle_message(shopify_deps(), raw, rejects) == "bad_body"
    assert [reason for reason, _ in rejects.reasons] == ["bad_body"]


async def test_the_agent_dead_letters_a_delivery_that_fails() -> None:
    class Broken(FakeMerchants):
        async def uninstall(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
            raise RuntimeError("constraint violated")

    rejects = Rejects()
    raw = delivery("app/uninstalled", {}).to_message(SHOPIFY_KEK)
    assert await handle_message(shopify_deps(store=Broken()), raw, rejects) == "failed"
    assert rejects.reasons == [("failed", "RuntimeError: constraint violated")]
