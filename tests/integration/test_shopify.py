"""The Shopify front door against the fake shop and a real worker (security layer on): OAuth install
and its refusals, shop fuzzing, webhook HMAC, dedupe and staleness (lifecycle: test_shopify_lifecycle.py)."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer

from core_app import topics
from core_app.events.codec import EventCodec
from core_app.settings import Settings
from tests.support.db import pg
from tests.support.processes import metric
from tests.support.shopify import (
    ShopifyWorld,
    install_query,
    merchant_row,
    new_shop,
    oauth_install,
    shopify_broker_fixture,  # noqa: F401  (fixture)
    shopify_fixture,  # noqa: F401  (fixture)
    signed_query,
    webhook_headers,
)


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
