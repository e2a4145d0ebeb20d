"""The issue's end-to-end path against the fake shop, on one worker with the security layer on:
install via OAuth, a full `shopify_api` import (bulk operation) with progress on the WebSocket, an
incremental sync after 500 changes pulling 500, uninstall, reinstall with the data intact, and
`shop/redact` purging every row of the shop, with its counts.

CI runs it with 1,000 customers per shop; `SHOPIFY_E2E_CUSTOMERS=50000` runs the issue's figure
(docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import aiohttp

from core_app.security.principal import VIEW
from core_app.settings import Settings
from tests.support.auth import create_api_credentials, mint_jwt, signed_session
from tests.support.db import pg
from tests.support.processes import eventually
from tests.support.shopify import (
    ShopifyWorld,
    new_shop,
    oauth_install,
    shopify_broker_fixture,  # noqa: F401  (fixture)
    shopify_fixture,  # noqa: F401  (fixture)
)

FAKE_CUSTOMERS = int(os.environ.get("SHOPIFY_E2E_CUSTOMERS", "1000"))


def merchant_state(settings: Settings, shop: str) -> tuple[str, str, int]:
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT id::text, status FROM merchants WHERE shop_domain = %s", (shop,))
        merchant_id, status = cur.fetchone()
        cur.execute(
            "SELECT count(*) FROM customers WHERE merchant_id = %s AND redacted_at IS NULL", (merchant_id,)
        )
        return merchant_id, status, cur.fetchone()[0]


async def import_with_progress(
    world: ShopifyWorld, settings: Settings, merchant_id: str
) -> tuple[dict, list]:
    """Start a shopify_api import and follow it on /core/v1/updates/stream until it ends."""
    creds = create_api_credentials(settings, merchant_id)
    streamed: list[tuple[float, dict[str, Any]]] = []
    async with aiohttp.ClientSession() as http, signed_session(creds) as signed:
        ws = await http.ws_connect(
            f"{world.worker.url}/core/v1/updates/stream", params={"merchant_id": merchant_id}
        )
        await ws.send_json({"type": "connection_init", "payload": {"token": mint_jwt(merchant_id, [VIEW])}})
        assert (await ws.receive_json(timeout=10))["type"] == "subscribed"
        body = {"merchant_id": merchant_id, "source": "shopify_api", "file_url": ""}
        async with signed.post(f"{world.worker.url}/core/v1/imports", json=body) as r:
            started = await r.json()
            assert r.status == 202, started

        async def follow() -> None:
            async for frame in ws:
                message = json.loads(frame.data)
                if message["type"] == "import.progress" and message["import_id"] == started["import_id"]:
                    streamed.append((time.monotonic(), message))
                    if message["status"] in ("completed", "failed"):
                        return

        await asyncio.wait_for(follow(), timeout=max(120, FAKE_CUSTOMERS / 200))
        await ws.close()
        params = {"merchant_id": merchant_id, "import_id": started["import_id"]}

        async def final() -> dict[str, Any] | None:
            async with signed.get(f"{world.worker.url}/core/v1/imports", params=params) as r:
                log = await r.json()
            return log if log["status"] in ("completed", "failed") else None

        return await eventually(final, timeout=30), streamed


async def test_install_import_sync_uninstall_reinstall_redact(
    shopify: ShopifyWorld, settings: Settings
) -> None:
    shop = new_shop()
    shopify.fake.customers = FAKE_CUSTOMERS  # the shop is made at install, with this many customers
    assert (await oauth_install(shopify, shop)).status == 302
    merchant_id, status, _ = merchant_state(settings, shop)
    assert status == "installed"
    book = shopify.fake.shops[shop].book

    began = time.monotonic()
    full, streamed = await import_with_progress(shopify, settings, merchant_id)
    took = time.monotonic() - began
    assert full["status"] == "completed", full
    assert full["record_count"] + full["error_count"] == len(book.customers) == FAKE_CUSTOMERS
    assert streamed[-1][1]["status"] == "completed" and streamed[-1][1]["processed"] == FAKE_CUSTOMERS
    assert len(streamed) >= 2
    print(f"\nshopify_api full import: {FAKE_CUSTOMERS} customers in {took:.1f} s, {len(streamed)} messages")
    _, _, imported = merchant_state(settings, shop)
    assert imported == full["record_count"]

    book.touch(500)
    began = time.monotonic()
    sync, _ = await import_with_progress(shopify, settings, merchant_id)
    assert sync["status"] == "completed" and sync["record_count"] + sync["error_count"] == 500
    print(f"incremental sync of 500 changes: {time.monotonic() - began:.1f} s")

    await shopify.fake.uninstall(shop)

    async def now(wanted: str) -> bool:
        return merchant_state(settings, shop)[1] == wanted

    await eventually(lambda: now("uninstalled"), timeout=20)
    assert (await oauth_install(shopify, shop)).status == 302
    assert merchant_state(settings, shop) == (merchant_id, "installed", imported)  # data intact

    await shopify.fake.uninstall(shop)
    await eventually(lambda: now("uninstalled"), timeout=20)
    delivery = await shopify.fake.compliance(shop, "shop/redact", {"shop_id": 1, "shop_domain": shop})
    assert delivery.statuses == [200]

    async def purged() -> Any:
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT details FROM audit_logs WHERE merchant_id = %s AND action = 'merchant.purged'",
                (merchant_id,),
            )
            row = cur.fetchone()
        return row and row[0]

    began = time.monotonic()
    details = await eventually(purged, timeout=max(60, FAKE_CUSTOMERS / 500))
    assert details["customers_deleted"] == imported and details["api_keys_deleted"] == 2
    assert details["data_keys_shredded"] <= imported and "@" not in json.dumps(details)
    took = time.monotonic() - began
    print(f"shop/redact: {imported} customers purged in {took:.1f} s ({details})")
    await eventually(lambda: _all_gone(settings, merchant_id), timeout=60)
    print(f"shop/redact: no row of the shop left after {time.monotonic() - began:.1f} s")


async def _all_gone(settings: Settings, merchant_id: str) -> bool:
    with pg(settings) as conn, conn.cursor() as cur:
        counts = []
        for table in (
            "customers",
            "customer_data_keys",
            "customer_import_logs",
            "api_keys",
            "program_settings",
        ):
            cur.execute(f"SELECT count(*) FROM {table} WHERE merchant_id = %s", (merchant_id,))
            counts.append(cur.fetchone()[0])
    return counts == [0] * 5
