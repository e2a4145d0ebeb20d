"""`customers/create` and `customers/update` webhooks on fakes (core_app/services/shopify_customers.py):
applied through the customer write path, found by Shopify id or email, PII read past, late
deliveries skipped."""

from __future__ import annotations

import json
from typing import Any

from core_app.services.shopify_customers import is_stale, shopify_row, sync_customer
from core_app.services.shopify_webhooks import WebhookDelivery, process_webhook
from tests.unit.fakes import FakeCustomerWriter, FakeMerchants, shopify_deps

SHOP = "sync-shop.myshopify.com"


def payload(**changes: Any) -> dict[str, Any]:
    base = {
        "id": 7001,
        "email": "Ann@Example.com",
        "first_name": "Ann",
        "last_name": "Lee",
        "phone": "+15550001111",
        "orders_count": 3,
        "total_spent": "120.50",
        "tags": "vip, newsletter",
        "email_marketing_consent": {"state": "subscribed"},
        "updated_at": "2026-01-02T10:00:00-05:00",
    }
    return base | changes


def world(status: str = "installed") -> tuple[Any, FakeMerchants, FakeCustomerWriter, str]:
    store, writer = FakeMerchants(), FakeCustomerWriter()
    merchant = store.add(SHOP, status=status)
    return shopify_deps(store=store, customers=writer), store, writer, merchant["id"]


async def test_a_new_customer_is_created_through_the_write_path_without_pii() -> None:
    deps, _, writer, merchant_id = world()
    delivery = WebhookDelivery("customers/create", SHOP, "h-1", None, payload())
    assert await process_webhook(deps, delivery) == "done"
    [(m, email, metadata)] = writer.created
    assert (m, email) == (merchant_id, "ann@example.com")
    assert metadata["shopify"] == {
        "external_id": "7001",
        "accepts_email_marketing": True,
        "total_spent": 120.5,
        "total_orders": 3,
        "tags": ["vip", "newsletter"],
        "updated_at": "2026-01-02T10:00:00-05:00",
    }
    for personal in ("Ann", "Lee", "+15550001111"):
        assert personal not in json.dumps(metadata)


async def test_an_update_finds_the_customer_by_shopify_id_and_changes_the_email_when_it_changed() -> None:
    deps, store, writer, merchant_id = world()
    store.shopify_ids[merchant_id] = {"7001": "c-1"}
    store.customers[merchant_id] = {"ann@example.com": "c-1"}
    assert await sync_customer(deps, payload(), SHOP) == "done"
    assert writer.updated[-1][1:3] == ("c-1", None)  # same email: not rewritten
    assert (
        await sync_customer(deps, payload(email="ann@new.example", updated_at="2026-01-03T00:00:00Z"), SHOP)
        == "done"
    )
    assert writer.updated[-1][1:3] == ("c-1", "ann@new.example") and writer.created == []


async def test_an_update_older_than_the_figures_held_is_stale() -> None:
    deps, store, writer, merchant_id = world()
    store.customers[merchant_id] = {"ann@example.com": "c-1"}
    writer.views["c-1"] = {"id": "c-1", "metadata": {"shopify": {"updated_at": "2026-01-05T00:00:00Z"}}}
    assert await sync_customer(deps, payload(updated_at="2026-01-04T00:00:00Z"), SHOP) == "stale"
    assert writer.updated == []


async def test_a_create_that_raced_another_becomes_an_update() -> None:
    deps, store, writer, _ = world()
    writer.taken.add("ann@example.com")
    lookups: list[str] = []
    original = store.customer_by_email

    async def by_email(m: str, email: str) -> str | None:
        lookups.append(email)
        return None if len(lookups) == 1 else "c-9"  # absent, then created by the other delivery

    store.customer_by_email = by_email  # type: ignore[method-assign]
    assert await sync_customer(deps, payload(), SHOP) == "done"
    assert writer.updated[-1][1] == "c-9"
    store.customer_by_email = original  # type: ignore[method-assign]


async def test_nothing_is_applied_for_an_uninstalled_shop_or_without_an_email() -> None:
    deps, _, writer, _ = world(status="uninstalled")
    assert await sync_customer(deps, payload(), SHOP) == "skipped"
    deps, _, writer, _ = world()
    assert await sync_customer(deps, payload(email=None), SHOP) == "skipped"
    assert await sync_customer(deps, payload(), "unknown.myshopify.com") == "skipped"
    assert writer.created == [] and writer.updated == []


def test_the_row_reads_the_legacy_consent_flag_too() -> None:
    row = shopify_row(payload(email_marketing_consent=None, accepts_marketing=False))
    assert row is not None and row.fields["accepts_email_marketing"] is False


def test_staleness_compares_times_not_text() -> None:
    held = {"shopify": {"updated_at": "2026-03-08T01:30:00-05:00"}}  # 06:30 UTC
    assert not is_stale(held, "2026-03-08T01:20:00-06:00")  # 07:20 UTC: newer, though it sorts lower
    assert is_stale(held, "2026-03-08T06:30:00Z")
    assert not is_stale({}, "2026-03-08T06:30:00Z") and not is_stale(held, "garbage")
