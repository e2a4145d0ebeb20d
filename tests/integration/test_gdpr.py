"""GDPR requests on a real worker (security layer on, the fake shop, real PostgreSQL, Redis and
Tansu): Shopify's customers/data_request and AdminCore's ACCESS build the same export, which holds
everything listed and nothing of another customer, is read only with customers:read_pii (audited)
and announced by `gdpr_export.ready`; after customers/redact a new export finds nothing readable;
every request is tracked with its 30-day deadline and counted on /metrics."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from core_app.domain.gdpr import request_id
from core_app.events.codec import EventCodec
from core_app.security.principal import FULL, READ_PII, VIEW
from core_app.settings import Settings
from tests.support.auth import ApiCredentials, create_api_credentials, signed_session
from tests.support.db import pg
from tests.support.events import insert_customers, points, produce, read_topic, referral, rfm
from tests.support.processes import eventually
from tests.support.shopify import (
    ShopifyWorld,
    merchant_row,
    new_shop,
    oauth_install,
    shopify_broker_fixture,  # noqa: F401  (fixture)
    shopify_fixture,  # noqa: F401  (fixture)
)


async def installed(world: ShopifyWorld, settings: Settings) -> tuple[str, str]:
    shop = new_shop()
    assert (await oauth_install(world, shop)).status == 302
    row = merchant_row(settings, shop)
    assert row is not None
    return shop, row["id"]


def request_row(settings: Settings, tracked: str) -> dict[str, Any] | None:
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT status, result, received_at, deadline_at, kind, source FROM gdpr_requests WHERE id = %s",
            (tracked,),
        )
        row = cur.fetchone()
    keys = ("status", "result", "received_at", "deadline_at", "kind", "source")
    return dict(zip(keys, row, strict=True)) if row else None


async def done(settings: Settings, tracked: str) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        row = request_row(settings, tracked)
        return row if row and row["status"] == "done" else None

    return await eventually(finished, timeout=45)


async def fetch_export(
    world: ShopifyWorld, creds: ApiCredentials, merchant_id: str, export_id: str
) -> tuple[int, Any]:
    url = f"{world.worker.url}/core/v1/gdpr/exports/{export_id}"
    async with signed_session(creds) as http, http.get(url, params={"merchant_id": merchant_id}) as r:
        return r.status, await r.json()


async def scored_customer(
    world: ShopifyWorld, settings: Settings, codec: EventCodec, merchant_id: str
) -> tuple[str, str, str, str]:
    """A customer with an import log, RFM, points (tier gold) and a referral, and another one."""
    import_id = str(uuid.uuid4())
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO customer_import_logs (import_id, merchant_id, source, status, record_count)"
            " VALUES (%s, %s, 'custom', 'completed', 2)",
            (import_id, merchant_id),
        )
    block = json.dumps({"imports": {"custom": {"import_id": import_id, "points": 5}}})
    [(target, email)] = insert_customers(settings, merchant_id, 1, metadata=block)
    [(other, _)] = insert_customers(settings, merchant_id, 1)
    now = datetime.now(UTC)
    events = [
        rfm(merchant_id, target, (3, 2, 4), now),
        points(merchant_id, target, 120, now, tier="gold"),
        referral(merchant_id, target, 2, now),
        points(merchant_id, other, 9, now, tier="other-tier"),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=world.broker.removeprefix("kafka://"))
    await producer.start()
    try:
        await produce(producer, codec, events)
    finally:
        await producer.stop()

    async def applied() -> bool:
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT metadata FROM customers WHERE merchant_id = %s AND id = %s", (merchant_id, target)
            )
            metadata = cur.fetchone()[0]
        return "points" in metadata and "referrals" in metadata

    await eventually(applied, timeout=45)
    return target, email, other, import_id


async def test_a_data_request_exports_everything_listed_and_nothing_else(
    shopify: ShopifyWorld, settings: Settings, codec: EventCodec
) -> None:
    shop, merchant_id = await installed(shopify, settings)
    target, email, other, import_id = await scored_customer(shopify, settings, codec, merchant_id)
    pii = create_api_credentials(settings, merchant_id, [VIEW, READ_PII])
    async with signed_session(pii) as http:  # a PII read: an audit entry about the customer
        params = {"merchant_id": merchant_id, "customer_id": target}
        async with http.get(f"{shopify.worker.url}/core/v1/customers", params=params) as r:
            assert r.status == 200 and (await r.json())["email"] == email
    payload = {
        "shop_domain": shop,
        "customer": {"id": 1, "email": email.upper()},
        "data_request": {"id": 4242},
    }
    assert (await shopify.fake.compliance(shop, "customers/data_request", payload)).statuses == [200]

    tracked = await done(settings, request_id("shopify", "access", f"{shop}:4242"))
    assert tracked["deadline_at"] - tracked["received_at"] == timedelta(days=30)
    export_id = tracked["result"]["export_id"]
    status, document = await fetch_export(shopify, pii, merchant_id, export_id)
    assert status == 200, document
    assert document["customer"]["email"] == email and document["customer"]["id"] == target
    assert document["rfm"] == {"recency": 3, "frequency": 2, "monetary": 4}
    assert document["points"]["balance"] == 120 and document["tier"] == "gold"
    assert document["referrals"]["total"] == 2
    assert [log["import_id"] for log in document["import_logs"]] == [import_id]
    assert "customer.pii_read" in [entry["action"] for entry in document["audit"]]
    assert other not in json.dumps(document) and "other-tier" not in json.dumps(document)

    assert (
        await fetch_export(
            shopify, create_api_credentials(settings, merchant_id, [FULL]), merchant_id, export_id
        )
    )[0] == 403
    _, stranger = await installed(shopify, settings)
    foreign = create_api_credentials(settings, stranger, [VIEW, READ_PII])
    assert (await fetch_export(shopify, foreign, merchant_id, export_id))[0] == 403
    assert (await fetch_export(shopify, foreign, stranger, export_id))[0] == 404
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM audit_logs WHERE action = 'gdpr.export_read' AND entity_id = %s",
            (export_id,),
        )
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT sealed FROM gdpr_exports WHERE id = %s", (export_id,))
        assert email not in cur.fetchone()[0]

    [ready] = await read_topic(
        shopify.broker, "gdpr_export.ready", lambda r: export_id.encode() in r.value, 1
    )
    assert ready.key == merchant_id.encode() and email.encode() not in ready.value.lower()
    announced = await codec.decode(ready.value)
    assert (
        str(announced["customer_id"]) == target
        and announced["found"] is True
        and announced["external_id"] == "4242"
    )


async def test_an_admincore_access_request_gets_the_same_export_then_redaction_leaves_nothing(
    shopify: ShopifyWorld, settings: Settings, codec: EventCodec
) -> None:
    shop, merchant_id = await installed(shopify, settings)
    target, email, _, _ = await scored_customer(shopify, settings, codec, merchant_id)
    pii = create_api_credentials(settings, merchant_id, [VIEW, READ_PII])
    first = await access(shopify, codec, merchant_id, target)
    status, document = await fetch_export(
        shopify, pii, merchant_id, (await done(settings, first))["result"]["export_id"]
    )
    assert status == 200 and document["customer"]["email"] == email and document["tier"] == "gold"
    old_export = document["export_id"]

    payload = {"shop_domain": shop, "customer": {"id": 1, "email": email}, "orders_to_redact": []}
    delivery = await shopify.fake.compliance(shop, "customers/redact", payload)
    await done(settings, request_id("shopify", "redact", f"{shop}:{delivery.webhook_id}"))

    assert (await fetch_export(shopify, pii, merchant_id, old_export))[0] == 404  # shredded with the key
    by_id = await access(shopify, codec, merchant_id, target)
    status, document = await fetch_export(
        shopify, pii, merchant_id, (await done(settings, by_id))["result"]["export_id"]
    )
    assert status == 200 and document["customer"] == {"id": target, "redacted": True}
    assert document["rfm"] is None and document["points"] is None and email not in json.dumps(document)
    payload = {"shop_domain": shop, "customer": {"id": 1, "email": email}, "data_request": {"id": 77}}
    await shopify.fake.compliance(shop, "customers/data_request", payload)
    by_email = await done(settings, request_id("shopify", "access", f"{shop}:77"))
    status, document = await fetch_export(shopify, pii, merchant_id, by_email["result"]["export_id"])
    assert status == 200 and document["found"] is False and email not in json.dumps(document)


async def access(world: ShopifyWorld, codec: EventCodec, merchant_id: str, customer_id: str) -> str:
    tracked = str(uuid.uuid4())
    record = {
        "event_id": str(uuid.uuid4()),
        "merchant_id": merchant_id,
        "customer_id": customer_id,
        "request_id": tracked,
        "request_type": "ACCESS",
        "requested_by": "dpo@admincore",
        "occurred_at": datetime.now(UTC),
    }
    producer = AIOKafkaProducer(bootstrap_servers=world.broker.removeprefix("kafka://"))
    await producer.start()
    try:
        await produce(producer, codec, [("gdpr_request.created", record)])
    finally:
        await producer.stop()
    return tracked


async def test_request_metrics_are_on_metrics(shopify: ShopifyWorld) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{shopify.worker.url}/metrics") as r:
        text = await r.text()
    for name in (
        "core_gdpr_request_oldest_open_age_seconds",
        "core_gdpr_requests_overdue",
        "core_gdpr_requests_open",
        'core_gdpr_requests_received_total{kind="access",source="shopify"}',
        'core_gdpr_requests_done_total{kind="shop_redact"}',
        'core_gdpr_requests_failed_total{kind="redact"}',
    ):
        assert name in text, name


async def test_customers_create_and_update_webhooks_keep_the_customer_current(
    shopify: ShopifyWorld, settings: Settings
) -> None:
    shop, merchant_id = await installed(shopify, settings)
    [created] = await shopify.fake.customer_webhooks(shop, "customers/create")
    assert created.statuses == [200]
    shopify_id = str(shopify.fake.shops[shop].book.customers[-1].id)

    def synced() -> dict[str, Any] | None:
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT id::text, metadata, email_hash IS NOT NULL FROM customers WHERE merchant_id = %s"
                " AND metadata -> 'shopify' ->> 'external_id' = %s",
                (merchant_id, shopify_id),
            )
            row = cur.fetchone()
        return {"id": row[0], "metadata": row[1], "has_email": row[2]} if row else None

    async def present() -> dict[str, Any] | None:
        return synced()

    first = await eventually(present, timeout=30)
    assert first["has_email"] and "first_name" not in json.dumps(first["metadata"])
    orders = first["metadata"]["shopify"]["total_orders"]
    customer = shopify.fake.shops[shop].book.customers[-1]
    customer.orders += 5
    customer.updated_at += 60
    address = shopify.fake.shops[shop].webhooks["customers/update"]
    delivery = await shopify.fake.sender.deliver(address, "customers/update", shop, customer.rest())
    assert delivery.statuses == [200]

    async def updated() -> bool:
        row = synced()
        return row is not None and row["metadata"]["shopify"]["total_orders"] == orders + 5

    await eventually(updated, timeout=30)
    assert synced()["id"] == first["id"]  # the same customer, updated through its owner
