"""A worker wired to the fake Shopify (security layer on, its own Tansu), and signing helpers."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from core_app.devtools.fake_shopify import FakeShopify, running_fake_shopify
from core_app.devtools.fake_shopify.data import iso
from core_app.domain.shopify import sign_body, sign_query
from core_app.settings import DEV_SHOPIFY_API_KEY, DEV_SHOPIFY_API_SECRET, Settings
from tests.support.db import pg
from tests.support.processes import (
    WorkerProcess,
    free_port,
    running_tansu,
    start_worker,
    stop_process,
    wait_ready,
)

SECRET = DEV_SHOPIFY_API_SECRET


@dataclass
class ShopifyWorld:
    fake: FakeShopify
    worker: WorkerProcess
    broker: str


@pytest.fixture(scope="package", name="shopify_broker")
def shopify_broker_fixture(data_root: Path) -> Iterator[str]:
    with running_tansu(data_root / f"tansu-shopify-{uuid.uuid4().hex[:6]}.log") as url:
        yield url


@pytest.fixture(scope="package", name="shopify")
async def shopify_fixture(worker_env: dict[str, str], shopify_broker: str) -> AsyncIterator[ShopifyWorld]:
    """One fake Shopify and worker per test package; shops made later hold `fake.customers` each."""
    port = free_port()
    fake = FakeShopify(DEV_SHOPIFY_API_KEY, SECRET, customers=300, app_url=f"http://127.0.0.1:{port}")
    fake.sender.first_delay = 0.05
    async with running_fake_shopify(fake):
        env = worker_env | {
            "AUTH_ENABLED": "true",
            "KAFKA_BROKER": shopify_broker,
            "SHOPIFY_SHOP_URL": fake.shop_url_template(),
            "SHOPIFY_APP_URL": f"http://127.0.0.1:{port}",
            "AUTH_CACHE_TTL": "1",  # an uninstall is seen by guard() within a second (D128)
        }
        process = start_worker(f"worker-shopify-{uuid.uuid4().hex[:6]}", env, http_port=port)
        try:
            await wait_ready(process)
            yield ShopifyWorld(fake, process, shopify_broker)
        finally:
            stop_process(process.process)


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


def new_shop() -> str:
    return f"shop-{uuid.uuid4().hex[:10]}.myshopify.com"


def signed_query(params: dict[str, str], secret: str = SECRET) -> str:
    return urlencode(params | {"hmac": sign_query(secret, params)})


def install_query(shop: str, **extra: str) -> str:
    return signed_query({"shop": shop, "timestamp": str(int(time.time()))} | extra)


def webhook_headers(
    topic: str, shop: str, body: bytes, webhook_id: str | None = None, triggered_at: float | None = None
) -> dict[str, str]:
    stamp = time.time() if triggered_at is None else triggered_at
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign_body(SECRET, body),
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": iso(stamp),
    }


async def oauth_install(world: ShopifyWorld, shop: str) -> aiohttp.ClientResponse:
    """install -> the fake's grant screen -> callback, step by step; returns the callback answer."""
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{world.worker.url}/shopify/install?{install_query(shop)}", allow_redirects=False
        ) as r:
            assert r.status == 302, await r.text()
            grant = r.headers["Location"]
        assert grant.startswith(f"{world.fake.url}/shops/{shop}/admin/oauth/authorize?")
        async with http.get(grant, allow_redirects=False) as r:
            assert r.status == 302, await r.text()
            callback = r.headers["Location"]
        assert callback.startswith(f"{world.worker.url}/shopify/callback?")
        async with http.get(callback, allow_redirects=False) as r:
            await r.read()
            r.callback_url = callback  # type: ignore[attr-defined]
            return r
