"""Pulling a shop's customers (REST pages, the bulk operation) against the in-process fake Shopify,
with the shared Redis faked: every customer once, the bulk lock taken and released, a refused token
stops the pull. The shared bucket's Lua and the 429 path run in tests/integration/test_shopify_pull.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from core_app.devtools.fake_shopify import FakeShopify, running_fake_shopify
from core_app.services.shopify_app import ShopifyApp
from core_app.services.shopify_bulk import bulk_customers
from core_app.services.shopify_pull import RestBucket, TokenRefused, pull_customers
from core_app.settings import Settings
from tests.unit.fakes import FakeShopifyCalls

SHOP, TOKEN = "pulled.myshopify.com", "shpat_unit"


@pytest.fixture
async def world() -> AsyncIterator[tuple[FakeShopify, FakeShopifyCalls]]:
    fake = FakeShopify("k", "s", customers=600)
    async with running_fake_shopify(fake):
        fake.shop(SHOP).tokens.add(TOKEN)
        settings = Settings().model_copy(update={"shopify_shop_url": fake.shop_url_template()})
        async with aiohttp.ClientSession() as http:
            yield fake, FakeShopifyCalls(ShopifyApp.from_settings(settings), http)


async def test_a_rest_pull_pages_through_every_customer(world: tuple[FakeShopify, FakeShopifyCalls]) -> None:
    fake, calls = world
    bucket = RestBucket(calls, SHOP)
    pages = [page async for page in pull_customers(calls, SHOP, TOKEN, bucket=bucket)]
    ids = [customer["id"] for page in pages for customer in page]
    assert [len(page) for page in pages] == [250, 250, 100]
    assert sorted(ids) == sorted(c.id for c in fake.shops[SHOP].book.customers)
    assert bucket.stats.requests == 3 and calls.redis.evals >= 3  # a slot taken before each call


async def test_a_rest_pull_with_a_refused_token_stops_at_once(
    world: tuple[FakeShopify, FakeShopifyCalls],
) -> None:
    _, calls = world
    bucket = RestBucket(calls, SHOP)
    with pytest.raises(TokenRefused):
        async for _page in pull_customers(calls, SHOP, "shpat_revoked", bucket=bucket):
            pass
    assert bucket.stats.requests == 1


async def test_a_bulk_pull_streams_every_customer_and_releases_its_lock(
    world: tuple[FakeShopify, FakeShopifyCalls],
) -> None:
    fake, calls = world
    ids = [c["id"] async for page in bulk_customers(calls, SHOP, TOKEN, poll_seconds=0.02) for c in page]
    assert sorted(ids) == sorted(str(c.id) for c in fake.shops[SHOP].book.customers)
    assert calls.redis.values == {}  # the one-bulk-per-shop lock is free again


async def test_a_bulk_pull_with_a_refused_token_fails_and_releases_its_lock(
    world: tuple[FakeShopify, FakeShopifyCalls],
) -> None:
    _, calls = world
    with pytest.raises(TokenRefused):
        async for _page in bulk_customers(calls, SHOP, "shpat_revoked", poll_seconds=0.02):
            pass
    assert calls.redis.values == {}


async def test_a_bulk_pull_waits_for_the_shops_running_one(
    world: tuple[FakeShopify, FakeShopifyCalls],
) -> None:
    _, calls = world
    lock = calls.key(SHOP, "bulk_lock")
    calls.redis.values[lock] = "1"  # another worker's bulk operation
    pull = asyncio.create_task(_count(bulk_customers(calls, SHOP, TOKEN, poll_seconds=0.01)))
    await asyncio.sleep(0.05)
    assert not pull.done()
    del calls.redis.values[lock]
    assert await asyncio.wait_for(pull, 5) == 600


async def _count(pages: AsyncIterator[list[dict[str, object]]]) -> int:
    return sum([len(page) async for page in pages])
