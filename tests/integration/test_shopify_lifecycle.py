"""The Shopify lifecycle against the fake shop and a real worker (security layer on): uninstall and
reinstall, customers/redact and shop/redact, webhook latency, `shopify_api` imports, token exchange."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp
import pytest

from core_app.settings import Settings
from tests.support.db import pg
from tests.support.events import insert_customers
from tests.support.processes import eventually
from tests.support.shopify import (
    ShopifyWorld,
    merchant_row,
    new_shop,
    oauth_install,
    shopify_broker_fixture,  # noqa: F401  (fixture)
    shopify_fixture,  # noqa: F401  (fixture)
    webhook_headers,
)


async def test_uninstall_then_reinstall_keeps_the_merchant(shopify: ShopifyWorld, settings: Settings) -> None:
    shop = new_shop()
    assert (await oauth_install(shopify, shop)).status == 302
    first = merchant_row(settings, shop)
    assert first is not None
    delivery = await shopify.fake.uninstall(shop)
    assert delivery is not None and delivery.statuses == [200]
    again = await shopify.fake.sender.redeliver(
        f"{shopify.worker.url}/shopify/webhooks/app/uninstalled", shop, delivery
    )
    assert again.statuses == [200]

    async def uninstalled() -> bool:
        row = merchant_row(settings, shop)
        return row is not None and row["status"] == "uninstalled" and not row["has_token"]

    await eventually(uninstalled, timeout=20)
    from tests.support.auth import create_api_credentials, signed_session

    [(customer_id, _)] = insert_customers(settings, first["id"], 1)
    url = f"{shopify.worker.url}/core/v1/customers"
    params = {"merchant_id": first["id"], "customer_id": customer_id}
    async with signed_session(create_api_credentials(settings, first["id"])) as http:

        async def read_status(wanted: int) -> bool:
            async with http.get(url, params=params) as r:
                return r.status == wanted

        await eventually(lambda: read_status(404), timeout=10)  # uninstalled: not served, data kept
        assert (await oauth_install(shopify, shop)).status == 302
        await eventually(lambda: read_status(200), timeout=10)  # reinstalled: served again
    back = merchant_row(settings, shop)
    assert (
        back is not None and back["id"] == first["id"] and back["status"] == "installed" and back["has_token"]
    )
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT action FROM audit_logs WHERE merchant_id = %s AND action LIKE 'merchant.%%'"
            " ORDER BY created_at",
            (first["id"],),
        )
        actions = [r[0] for r in cur.fetchall()]
    assert actions == [
        "merchant.installed",
        "merchant.uninstalled",
        "merchant.reinstalled",
    ]  # redelivery: once


async def test_customers_redact_erases_the_customer(shopify: ShopifyWorld, settings: Settings) -> None:
    shop = new_shop()
    assert (await oauth_install(shopify, shop)).status == 302
    row = merchant_row(settings, shop)
    assert row is not None
    (target, email), (other, _) = insert_customers(settings, row["id"], 2)
    payload = {
        "shop_domain": shop,
        "customer": {"id": 191167, "email": email.upper(), "phone": None},
        "orders_to_redact": [],
    }
    delivery = await shopify.fake.compliance(shop, "customers/redact", payload)
    assert delivery.statuses == [200]

    def redacted() -> dict[str, bool]:
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT id::text, redacted_at IS NOT NULL FROM customers WHERE merchant_id = %s", (row["id"],)
            )
            return dict(cur.fetchall())

    async def done() -> bool:
        return redacted()[target]

    await eventually(done, timeout=30)
    assert redacted()[other] is False
    # the hand-off topic holds the delivery, but never the email in plaintext
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        "core.shopify.webhooks",
        bootstrap_servers=shopify.broker.removeprefix("kafka://"),
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        values = [m.value for batch in (await consumer.getmany(timeout_ms=3000)).values() for m in batch]
    finally:
        await consumer.stop()
    ours = [v for v in values if delivery.webhook_id.encode() in v]
    assert ours and all(email.encode() not in v and email.upper().encode() not in v for v in ours)


async def test_a_hundred_webhooks_are_answered_fast_while_an_import_runs(
    shopify: ShopifyWorld, settings: Settings
) -> None:
    from tests.support.auth import create_api_credentials

    shop = new_shop()
    shopify.fake.customers = 3000
    assert (await oauth_install(shopify, shop)).status == 302
    row = merchant_row(settings, shop)
    assert row is not None
    importing = asyncio.create_task(
        shopify_import(shopify, create_api_credentials(settings, row["id"]), row["id"])
    )
    slots = asyncio.Semaphore(10)  # Shopify delivers concurrently, not all in one instant

    async def one(http: aiohttp.ClientSession, n: int) -> float:
        body = json.dumps({"id": n, "email": f"c{n}@example.com"}).encode()
        async with slots:
            started = time.perf_counter()
            async with http.post(
                f"{shopify.worker.url}/shopify/webhooks/customers/create",
                data=body,
                headers=webhook_headers("customers/create", shop, body, webhook_id=str(uuid.uuid4())),
            ) as r:
                assert r.status == 200
            return time.perf_counter() - started

    try:
        async with aiohttp.ClientSession() as http:
            await one(http, -1)  # warm-up: the producer's first send to the topic fetches its metadata
            latencies = sorted(await asyncio.gather(*(one(http, n) for n in range(100))))
        running = not importing.done()
    finally:
        log = await importing
        shopify.fake.customers = 300
    assert log["status"] == "completed", log
    assert latencies[98] < 1.0, latencies[-5:]
    print(f"p50 {latencies[49] * 1000:.0f} ms, p99 {latencies[98] * 1000:.0f} ms; importing: {running}")


async def shopify_import(world: ShopifyWorld, creds: Any, merchant_id: str) -> dict[str, Any]:
    from tests.support.auth import signed_session

    body = {"merchant_id": merchant_id, "source": "shopify_api", "file_url": ""}
    async with signed_session(creds) as http:
        async with http.post(f"{world.worker.url}/core/v1/imports", json=body) as r:
            started = await r.json()
            assert r.status == 202, started

        async def final() -> dict[str, Any] | None:
            params = {"merchant_id": merchant_id, "import_id": started["import_id"]}
            async with http.get(f"{world.worker.url}/core/v1/imports", params=params) as r:
                log = await r.json()
            return log if log["status"] in ("completed", "failed") else None

        return await eventually(final, timeout=60, interval=0.3)


async def test_a_shopify_api_import_pulls_the_shop_then_only_what_changed(
    shopify: ShopifyWorld, settings: Settings
) -> None:
    from tests.support.auth import create_api_credentials

    shop = new_shop()
    assert (await oauth_install(shopify, shop)).status == 302
    row = merchant_row(settings, shop)
    assert row is not None
    creds = create_api_credentials(settings, row["id"])
    book = shopify.fake.shops[shop].book
    missing = sum(1 for c in book.customers if c.email is None)
    first = await shopify_import(shopify, creds, row["id"])
    assert first["status"] == "completed", first
    assert first["source"] == "shopify_api" and first["record_count"] + first["error_count"] == len(
        book.customers
    )
    assert first["error_count"] >= missing  # no email, and the case-duplicates of earlier emails
    bulk = shopify.fake.shops[shop].bulk  # the full pull was one bulk operation
    assert bulk is not None and bulk.status == "COMPLETED" and bulk.object_count == len(book.customers)
    rest_calls = shopify.fake.shops[shop].rest_calls
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM customers WHERE merchant_id = %s", (row["id"],))
        assert cur.fetchone()[0] == first["record_count"]

    changed = [c for c in book.touch(40) if c.email is not None]
    second = await shopify_import(shopify, creds, row["id"])
    assert second["status"] == "completed", second
    assert second["record_count"] + second["error_count"] == 40  # only what changed was pulled
    assert shopify.fake.shops[shop].rest_calls > rest_calls  # the incremental one pages REST
    assert second["record_count"] >= len([c for c in changed if c.email == c.email.lower()])


def session_token(shop: str, secret: str = "dev-only-shopify-secret", **changes: Any) -> str:
    import jwt

    now = int(time.time())
    claims = {
        "iss": f"https://{shop}/admin",
        "dest": f"https://{shop}",
        "aud": "dev-shopify-key",
        "sub": "42",
        "exp": now + 60,
        "nbf": now - 5,
        "iat": now - 5,
        "jti": str(uuid.uuid4()),
        "sid": "s1",
    } | changes
    return jwt.encode(claims, secret, algorithm="HS256")


async def post_session(world: ShopifyWorld, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{world.worker.url}/shopify/session", headers=headers) as r,
    ):
        return r.status, await r.json(content_type=None)


async def test_an_embedded_app_installs_by_token_exchange(shopify: ShopifyWorld, settings: Settings) -> None:
    shop = new_shop()
    token = session_token(shop)
    status, merchant = await post_session(shopify, token)
    assert status == 200, merchant
    assert (
        merchant["shop_domain"] == shop and merchant["status"] == "installed" and not merchant["reinstalled"]
    )
    row = merchant_row(settings, shop)
    assert row is not None and row["has_token"] and row["id"] == merchant["id"]
    assert "app/uninstalled" in shopify.fake.shops[shop].webhooks
    assert (await post_session(shopify, token))[0] == 401  # a session token is good once


@pytest.mark.parametrize(
    "case",
    ["none", "wrong secret", "expired", "other app", "iss of another shop", "not a shop"],
)
async def test_a_bad_session_token_is_401(shopify: ShopifyWorld, case: str) -> None:
    shop = new_shop()
    token = {
        "none": None,
        "wrong secret": session_token(shop, secret="someone-elses-secret-0000000000000"),
        "expired": session_token(shop, exp=int(time.time()) - 60),
        "other app": session_token(shop, aud="another-app"),
        "iss of another shop": session_token(shop, iss=f"https://{new_shop()}/admin"),
        "not a shop": session_token(shop, dest="https://evil.com", iss="https://evil.com/admin"),
    }[case]
    status, body = await post_session(shopify, token)
    assert status == 401, body
    assert shop not in shopify.fake.shops or not shopify.fake.shops[shop].tokens


async def test_shop_redact_after_uninstall_purges_the_shop_with_counts(
    shopify: ShopifyWorld, settings: Settings
) -> None:
    import redis

    from core_app.settings import DEV_INTERNAL_TOKEN
    from tests.support.auth import create_api_credentials, signed_session
    from tests.support.events import read_topic

    shop = new_shop()
    assert (await oauth_install(shopify, shop)).status == 302
    row = merchant_row(settings, shop)
    assert row is not None
    merchant_id = row["id"]
    people = insert_customers(settings, merchant_id, 3)  # imported: PostgreSQL only
    creds = create_api_credentials(settings, merchant_id)
    base = shopify.worker.url
    async with signed_session(creds) as http:
        body = {"merchant_id": merchant_id, "email": "api-made@example.com", "metadata": {"tier": "gold"}}
        async with http.post(f"{base}/core/v1/customers", json=body) as r:  # table, data key, row
            assert r.status == 201, await r.text()
            made = (await r.json())["id"]
        loyalty = {"points_per_dollar": 10, "languages": ["en"]}
        settings_body = {"merchant_id": merchant_id, "rfm_thresholds": THRESHOLDS, "loyalty_config": loyalty}
        async with http.post(f"{base}/core/v1/settings", json=settings_body) as r:
            assert r.status == 200, await r.text()
        params = {"merchant_id": merchant_id, "customer_id": people[0][0]}
        async with http.get(f"{base}/core/v1/customers", params=params) as r:  # cached in Redis
            assert r.status == 200
    client = redis.Redis.from_url(settings.redis_dsn)
    prefix = settings.redis_key_prefix
    client.hset(f"{prefix}feature_flags:{merchant_id}", "customer_import_enabled", "off")
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO customer_import_logs (import_id, merchant_id, source, status)"
            " VALUES (%s, %s, 'custom', 'completed')",
            (str(uuid.uuid4()), merchant_id),
        )
    early = {"shop_id": 1, "shop_domain": shop}
    assert (await shopify.fake.compliance(shop, "shop/redact", early)).statuses == [200]
    await asyncio.sleep(1)  # still installed: that delivery must purge nothing
    assert counts(settings, merchant_id)["customers"] == 4

    await shopify.fake.uninstall(shop)

    async def uninstalled() -> bool:
        current = merchant_row(settings, shop)
        return current is not None and current["status"] == "uninstalled"

    await eventually(uninstalled, timeout=20)
    delivery = await shopify.fake.compliance(shop, "shop/redact", {"shop_id": 1, "shop_domain": shop})
    assert delivery.statuses == [200]

    async def purged() -> Any:
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT details FROM audit_logs WHERE merchant_id = %s AND action = 'merchant.purged'",
                (merchant_id,),
            )
            found = cur.fetchone()
        return found and found[0]

    details = await eventually(purged, timeout=60)
    assert details["customers_deleted"] == 4 and details["data_keys_shredded"] == 1
    assert details["api_keys_deleted"] == 1 and details["program_settings_deleted"] == 1
    assert details["import_logs_deleted"] == 1 and details["table_customers_tombstoned"] >= 1
    assert details["table_program_settings_tombstoned"] == 1 and details["redis_keys_deleted"] >= 3
    assert "@" not in json.dumps(details)
    assert not client.exists(f"{prefix}feature_flags:{merchant_id}")
    assert not client.exists(f"{prefix}customer:{merchant_id}:{people[0][0]}")

    async def rows_gone() -> bool:  # the sink deletes what it wrote back, on the tombstones
        return set(counts(settings, merchant_id).values()) == {0}

    await eventually(rows_gone, timeout=30)
    await asyncio.sleep(2)
    assert set(counts(settings, merchant_id).values()) == {0}, counts(settings, merchant_id)
    internal = {"X-Internal-Token": DEV_INTERNAL_TOKEN}
    async with aiohttp.ClientSession(headers=internal) as http:
        async with http.get(f"{base}/internal/v1/customers/{merchant_id}/{made}") as r:
            assert r.status == 404  # gone from the owner's RocksDB
        async with http.get(f"{base}/internal/v1/settings/{merchant_id}") as r:
            assert r.status == 404
    key = json.dumps(f"{merchant_id}:{made}").encode()
    await read_topic(
        shopify.broker, "core-customers-changelog", lambda r: r.key == key and r.value is None, 1
    )
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT status, result FROM gdpr_requests WHERE merchant_id = %s AND kind = 'shop_redact'"
            " ORDER BY received_at",
            (merchant_id,),
        )
        assert [status for status, _ in cur.fetchall()] == ["done", "done"]  # the early one purged nothing


THRESHOLDS = {
    "recency": {"min": 1, "max": 90},
    "frequency": {"min": 1, "max": 10},
    "monetary": {"min": 50, "max": 2500},
}


def counts(settings: Settings, merchant_id: str) -> dict[str, int]:
    tables = ("customers", "customer_data_keys", "program_settings", "customer_import_logs", "api_keys")
    with pg(settings) as conn, conn.cursor() as cur:
        found = {}
        for table in tables:
            cur.execute(f"SELECT count(*) FROM {table} WHERE merchant_id = %s", (merchant_id,))
            found[table] = cur.fetchone()[0]
    return found
