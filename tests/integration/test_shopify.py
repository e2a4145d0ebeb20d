"""The Shopify front door against the fake shop and a real worker (security layer on): OAuth install,
webhooks (HMAC, dedupe, stale), app/uninstalled and reinstall, customers/redact -> erasure."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer

from core_app import topics
from core_app.events.codec import EventCodec
from core_app.settings import Settings
from tests.helpers import eventually, metric
from tests.integration.conftest import pg
from tests.integration.events import insert_customers
from tests.integration.shopify_support import (
    ShopifyWorld,
    install_query,
    new_shop,
    oauth_install,
    shopify_broker_fixture,  # noqa: F401  (fixture)
    shopify_fixture,  # noqa: F401  (fixture)
    signed_query,
    webhook_headers,
)


def merchant_row(settings: Settings, shop: str) -> dict[str, Any] | None:
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id::text, status, scopes, token_sealed IS NOT NULL, installed_at, uninstalled_at"
            " FROM merchants WHERE shop_domain = %s",
            (shop,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    keys = ("id", "status", "scopes", "has_token", "installed_at", "uninstalled_at")
    return dict(zip(keys, row, strict=True))


async def installed_events(broker: str, codec: EventCodec, shop: str) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        topics.MERCHANT_INSTALLED,
        bootstrap_servers=broker.removeprefix("kafka://"),
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=3000)
        records = [await codec.decode(m.value) for batch in batches.values() for m in batch]
    finally:
        await consumer.stop()
    return [r for r in records if r["shop_domain"] == shop]


async def post_webhook(
    world: ShopifyWorld, topic: str, body: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{world.worker.url}/shopify/webhooks/{topic}", data=body, headers=headers) as r,
    ):
        return r.status, await r.json(content_type=None)


async def test_an_oauth_install_creates_the_merchant_with_a_sealed_token(
    shopify: ShopifyWorld, settings: Settings, codec: EventCodec
) -> None:
    shop = new_shop()
    answer = await oauth_install(shopify, shop)
    assert answer.status == 302
    assert answer.headers["Location"] == f"{shopify.fake.url}/shops/{shop}/admin/apps/dev-shopify-key"
    row = merchant_row(settings, shop)
    assert row is not None and row["status"] == "installed" and row["has_token"]
    assert row["scopes"] == ["read_customers", "read_orders", "write_customers"]
    [token] = shopify.fake.shops[shop].tokens
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT token_key_wrapped || token_sealed FROM merchants WHERE shop_domain = %s", (shop,))
        assert token.encode() not in bytes(cur.fetchone()[0])
    assert token not in shopify.worker.log_path.read_text(errors="replace")
    hooks = shopify.fake.shops[shop].webhooks
    assert hooks == {
        t: f"{shopify.worker.url}/shopify/webhooks/{t}"
        for t in ("app/uninstalled", "customers/create", "customers/update")
    }
    [event] = await installed_events(shopify.broker, codec, shop)
    assert str(event["merchant_id"]) == row["id"] and event["reinstalled"] is False

    # the callback URL again: its state nonce is spent
    async with aiohttp.ClientSession() as http, http.get(answer.callback_url, allow_redirects=False) as again:  # type: ignore[attr-defined]
        assert again.status == 401 and (await again.json())["error"]["field"] == "state"


@pytest.mark.parametrize(
    "query",
    [
        "shop=a.myshopify.com&timestamp=1",  # no hmac
        "shop=a.myshopify.com&timestamp=1&hmac=" + "0" * 64,  # wrong hmac
    ],
)
async def test_install_without_a_valid_hmac_is_401(shopify: ShopifyWorld, query: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{shopify.worker.url}/shopify/install?{query}", allow_redirects=False) as r,
    ):
        assert r.status == 401 and "Location" not in r.headers


async def test_install_refuses_an_old_link_and_a_signed_query_for_another_secret(
    shopify: ShopifyWorld,
) -> None:
    old = signed_query({"shop": new_shop(), "timestamp": str(int(time.time()) - 3600)})
    forged = signed_query({"shop": new_shop(), "timestamp": str(int(time.time()))}, secret="someone-else")
    async with aiohttp.ClientSession() as http:
        for query in (old, forged):
            async with http.get(f"{shopify.worker.url}/shopify/install?{query}", allow_redirects=False) as r:
                assert r.status == 401


EVIL_SHOPS = [
    "evil.com",
    "evil.com#.myshopify.com",
    "evil.com/.myshopify.com",
    "evil.com?.myshopify.com",
    "a.myshopify.com.evil.com",
    "a.myshopify.com@evil.com",
    "evil.com\\.myshopify.com",
    "A.myshopify.com",
    "a.myshopify.com:8443",
    "//evil.com",
    "a.myshopify.com/../evil",
    "a.myshopify.com%2F@evil.com",
    "a.myshopify.com\r\nLocation: https://evil.com",
    "",
    " a.myshopify.com",
    "\u0430.myshopify.com",
]


async def test_shop_fuzzing_finds_no_redirect_off_shopify(shopify: ShopifyWorld) -> None:
    async with aiohttp.ClientSession() as http:
        for shop in EVIL_SHOPS:
            url = f"{shopify.worker.url}/shopify/install?{install_query(shop)}"
            async with http.get(url, allow_redirects=False) as r:
                assert r.status == 400, (shop, r.status)
                assert (await r.json())["error"]["field"] == "shop"
        for _ in range(50):  # valid shops: the redirect always goes to that shop's own host
            shop = new_shop()
            async with http.get(
                f"{shopify.worker.url}/shopify/install?{install_query(shop)}", allow_redirects=False
            ) as r:
                assert urlsplit(r.headers["Location"]).path == f"/shops/{shop}/admin/oauth/authorize"


async def test_webhook_hmac_is_over_the_raw_body(shopify: ShopifyWorld) -> None:
    shop, body = new_shop(), json.dumps({"id": 1, "domain": "x"}).encode()
    headers = webhook_headers("customers/update", shop, body)
    status, _ = await post_webhook(
        shopify, "customers/update", body, {k: v for k, v in headers.items() if k != "X-Shopify-Hmac-Sha256"}
    )
    assert status == 401
    status, _ = await post_webhook(
        shopify, "customers/update", body, headers | {"X-Shopify-Hmac-Sha256": "bad"}
    )
    assert status == 401
    changed = body[:-2] + b"2}"  # one byte changed, same signature
    status, _ = await post_webhook(shopify, "customers/update", changed, headers)
    assert status == 401
    status, answer = await post_webhook(shopify, "customers/update", body, headers)
    assert (status, answer) == (200, {"status": "accepted"})
    status, answer = await post_webhook(shopify, "customers/update", body, headers)
    assert (status, answer) == (200, {"status": "duplicate"})
    stale = webhook_headers("customers/update", shop, body, triggered_at=time.time() - 86_400)
    assert await post_webhook(shopify, "customers/update", body, stale) == (200, {"status": "stale"})
    assert (
        await metric(
            shopify.worker, "core_shopify_webhooks_total", topic="customers/update", outcome="refused"
        )
        >= 3
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
    assert (await oauth_install(shopify, shop)).status == 302
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


async def test_a_hundred_webhooks_are_answered_fast(shopify: ShopifyWorld) -> None:
    shop = new_shop()

    async def one(http: aiohttp.ClientSession, n: int) -> float:
        body = json.dumps({"id": n, "email": f"c{n}@example.com"}).encode()
        started = time.perf_counter()
        async with http.post(
            f"{shopify.worker.url}/shopify/webhooks/customers/create",
            data=body,
            headers=webhook_headers("customers/create", shop, body, webhook_id=str(uuid.uuid4())),
        ) as r:
            assert r.status == 200
        return time.perf_counter() - started

    async with aiohttp.ClientSession() as http:
        await one(http, -1)  # warm-up: the producer's first send to the topic fetches its metadata
        latencies = sorted(await asyncio.gather(*(one(http, n) for n in range(100))))
    assert latencies[98] < 1.0, latencies[-5:]


async def shopify_import(world: ShopifyWorld, creds: Any, merchant_id: str) -> dict[str, Any]:
    from tests.auth import signed_session

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
    from tests.auth import create_api_credentials

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

    from tests.auth import create_api_credentials

    shop = new_shop()
    assert (await oauth_install(shopify, shop)).status == 302
    row = merchant_row(settings, shop)
    assert row is not None
    people = insert_customers(settings, row["id"], 3)
    create_api_credentials(settings, row["id"])
    client = redis.Redis.from_url(settings.redis_dsn)
    client.hset(f"{settings.redis_key_prefix}feature_flags:{row['id']}", "customer_import_enabled", "off")
    early = {"shop_id": 1, "shop_domain": shop}
    assert (await shopify.fake.compliance(shop, "shop/redact", early)).statuses == [200]
    await asyncio.sleep(1)  # still installed: that delivery must purge nothing
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM customers WHERE merchant_id = %s AND redacted_at IS NULL", (row["id"],)
        )
        assert cur.fetchone()[0] == 3

    await shopify.fake.uninstall(shop)

    async def uninstalled() -> bool:
        current = merchant_row(settings, shop)
        return current is not None and current["status"] == "uninstalled"

    await eventually(uninstalled, timeout=20)
    assert (
        await shopify.fake.compliance(shop, "shop/redact", {"shop_id": 1, "shop_domain": shop})
    ).statuses == [200]

    def audit() -> list[Any]:
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT details FROM audit_logs WHERE merchant_id = %s AND action = 'merchant.purged'",
                (row["id"],),
            )
            return [r[0] for r in cur.fetchall()]

    async def purged() -> list[Any]:
        return audit()

    [details] = await eventually(purged, timeout=30)
    assert details["customers_redacted"] == 3 and details["api_keys_deleted"] == 1
    assert details["redis_keys_deleted"] >= 1
    assert not client.exists(f"{settings.redis_key_prefix}feature_flags:{row['id']}")
    assert "@" not in json.dumps(details)

    async def all_redacted() -> bool:
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM customers WHERE merchant_id = %s AND redacted_at IS NOT NULL"
                " AND email = 'redacted'",
                (row["id"],),
            )
            return cur.fetchone()[0] == len(people)

    await eventually(all_redacted, timeout=30)
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM api_keys WHERE merchant_id = %s", (row["id"],))
        assert cur.fetchone()[0] == 0
        cur.execute(
            "SELECT count(*) FROM customer_data_keys WHERE merchant_id = %s AND wrapped_key IS NOT NULL",
            (row["id"],),
        )
        assert cur.fetchone()[0] == 0
