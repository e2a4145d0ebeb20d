"""The fake Shopify speaks the real protocol: signed OAuth redirects, single-use codes, Link
pagination, the leaky bucket's 429 + Retry-After, GraphQL cost and bulk JSONL, signed webhooks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from core_app.devtools.fake_shopify import FakeShopify, running_fake_shopify
from core_app.domain.shopify import next_page_info, verify_body, verify_query

KEY, SECRET, SHOP = "fake-key", "fake-secret", "quirky.myshopify.com"


@pytest.fixture
async def fake() -> AsyncIterator[FakeShopify]:
    async with running_fake_shopify(FakeShopify(KEY, SECRET, customers=600)) as running:
        yield running


async def token_for(fake: FakeShopify, http: aiohttp.ClientSession) -> str:
    base = f"{fake.url}/shops/{SHOP}/admin/oauth"
    query = {"client_id": KEY, "scope": "read_customers", "redirect_uri": "https://app/cb", "state": "n1"}
    async with http.get(f"{base}/authorize", params=query, allow_redirects=False) as grant:
        assert grant.status == 302
        location = urlsplit(grant.headers["Location"])
    assert location.netloc == "app" and location.path == "/cb"
    params = verify_query(SECRET, location.query)  # signed like Shopify's
    assert params["state"] == "n1" and params["shop"] == SHOP
    body = {"client_id": KEY, "client_secret": SECRET, "code": params["code"]}
    async with http.post(f"{base}/access_token", json=body) as exchanged:
        answer = await exchanged.json()
    assert answer["scope"] == "read_customers"
    async with http.post(f"{base}/access_token", json=body) as reused:
        assert reused.status == 400  # a code is good once
    return str(answer["access_token"])


async def test_rest_pages_follow_link_headers_and_hold_the_quirks(fake: FakeShopify) -> None:
    async with aiohttp.ClientSession() as http:
        token = await token_for(fake, http)
        url = f"{fake.url}/shops/{SHOP}/admin/api/2025-01/customers.json"
        seen, params = [], {"limit": "250"}
        while True:
            async with http.get(url, params=params, headers={"X-Shopify-Access-Token": token}) as page:
                assert page.status == 200
                assert page.headers["X-Shopify-Shop-Api-Call-Limit"].endswith("/40")
                seen += (await page.json())["customers"]
                cursor = next_page_info(page.headers.get("Link"))
            if cursor is None:
                break
            params = {"limit": "250", "page_info": cursor}
    assert len(seen) == 600 and len({c["id"] for c in seen}) == 600
    emails = [c["email"] for c in seen]
    assert None in emails  # missing emails
    lowered = [e.lower() for e in emails if e]
    assert len(lowered) > len(set(lowered))  # case-duplicates
    names = " ".join(f"{c['first_name']} {c['last_name']}" for c in seen)
    assert "فاطمة" in names or "יעל" in names
    assert any(ord(ch) > 0x1F000 for ch in names)  # emoji


async def test_an_overrun_bucket_answers_429_with_retry_after(fake: FakeShopify) -> None:
    async with aiohttp.ClientSession() as http:
        token = await token_for(fake, http)
        url = f"{fake.url}/shops/{SHOP}/admin/api/2025-01/customers/count.json"
        headers = {"X-Shopify-Access-Token": token}
        statuses = []
        for _ in range(45):
            async with http.get(url, headers=headers) as answer:
                statuses.append(answer.status)
                if answer.status == 429:
                    retry_after = float(answer.headers["Retry-After"])
        assert statuses[:39].count(200) == 39 and 429 in statuses[39:]
        assert 0 < retry_after <= 2
        async with http.get(url) as anonymous:
            assert anonymous.status == 401


async def test_graphql_reports_cost_and_bulk_writes_jsonl(fake: FakeShopify) -> None:
    async with aiohttp.ClientSession() as http:
        token = await token_for(fake, http)
        url = f"{fake.url}/shops/{SHOP}/admin/api/2025-01/graphql.json"
        headers = {"X-Shopify-Access-Token": token}
        query = (
            "query($first: Int!, $after: String)"
            " { customers(first: $first, after: $after) { edges { node { id } } } }"
        )
        async with http.post(url, json={"query": query, "variables": {"first": 250}}, headers=headers) as r:
            first = await r.json()
        assert len(first["data"]["customers"]["edges"]) == 250
        throttle = first["extensions"]["cost"]["throttleStatus"]
        assert throttle["currentlyAvailable"] < throttle["maximumAvailable"] and throttle["restoreRate"] == 50
        run = (
            'mutation { bulkOperationRunQuery(query: "{ customers { edges { node { id } } } }")'
            " { bulkOperation { id } userErrors { message } } }"
        )
        async with http.post(url, json={"query": run}, headers=headers) as r:
            started = (await r.json())["data"]["bulkOperationRunQuery"]
        assert started["userErrors"] == [] and started["bulkOperation"]["id"].startswith("gid://")
        poll = "{ currentBulkOperation { id status objectCount url } }"
        for _ in range(100):
            async with http.post(url, json={"query": poll}, headers=headers) as r:
                current = (await r.json())["data"]["currentBulkOperation"]
            if current["status"] == "COMPLETED":
                break
            await asyncio.sleep(0.05)
        assert current["objectCount"] == "600"
        async with http.get(current["url"]) as jsonl:
            lines = (await jsonl.text()).splitlines()
        assert len(lines) == 600 and json.loads(lines[0])["id"].startswith("gid://shopify/Customer/")
        fake.bulk_url_ttl = -1
        async with http.post(url, json={"query": run}, headers=headers) as r:
            assert (await r.json())["data"]["bulkOperationRunQuery"]["userErrors"] == []
        await fake.shops[SHOP].bulk_task  # type: ignore[misc]
        async with http.post(url, json={"query": poll}, headers=headers) as r:
            expired_url = (await r.json())["data"]["currentBulkOperation"]["url"]
        async with http.get(expired_url) as expired:
            assert expired.status == 403


async def test_the_webhook_sender_signs_retries_and_redelivers() -> None:
    received: list[tuple[str, bytes, str]] = []
    answers = iter([500, 0, 200, 200])

    async def hook(request: web.Request) -> web.Response:
        status = next(answers)
        body = await request.read()
        received.append(
            (request.headers["X-Shopify-Webhook-Id"], body, request.headers["X-Shopify-Hmac-Sha256"])
        )
        if status == 0:
            await asyncio.sleep(0.3)  # no answer within the sender's timeout
        return web.Response(status=status or 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    address = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"  # type: ignore[union-attr]
    fake = FakeShopify(KEY, SECRET)
    fake.sender.first_delay, fake.sender.timeout = 0.01, 0.1
    try:
        started = time.monotonic()
        delivery = await fake.sender.deliver(address, "customers/redact", SHOP, {"customer": {"id": 1}})
        assert delivery.statuses == [500, 0, 200] and delivery.delivered
        again = await fake.sender.redeliver(address, SHOP, delivery)
        assert again.webhook_id == delivery.webhook_id and again.statuses == [200]
    finally:
        await runner.cleanup()
    assert len({r[0] for r in received}) == 1 and time.monotonic() - started < 5
    assert all(verify_body(SECRET, body, signature) for _, body, signature in received)
