"""Pulling customers from the fake shop's Admin REST API through the Redis-shared rate limit."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from core_app import db
from core_app.devtools.fake_shopify import FakeShopify, running_fake_shopify
from core_app.devtools.fake_shopify.data import iso
from core_app.devtools.fake_shopify.limits import LeakyBucket
from core_app.security.crypto import kek_from_setting
from core_app.services.shopify_app import ShopifyApp, ShopifyDeps
from core_app.services.shopify_pull import RestBucket, pull_customers
from core_app.settings import Settings

LEAK = 40.0  # the fake's bucket leaks fast here, so the suite stays quick; the logic is the same


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[tuple[FakeShopify, ShopifyDeps, str, str]]:
    fake = FakeShopify("k", "s", customers=3000)
    async with running_fake_shopify(fake):
        shop = f"pull-{uuid.uuid4().hex[:8]}.myshopify.com"
        fake.shop(shop).rest_bucket = LeakyBucket(capacity=40, leak_per_second=LEAK)
        token = "shpat_test"
        fake.shop(shop).tokens.add(token)
        app = ShopifyApp.from_settings(
            settings.model_copy(update={"shopify_shop_url": fake.shop_url_template()})
        )
        redis = Redis.from_url(settings.redis_dsn)
        pool = await db.create_pool(settings, minsize=0, maxsize=1)
        async with aiohttp.ClientSession() as http:

            async def publish(*_args: object) -> None:
                raise AssertionError("pulling publishes nothing")

            kek = kek_from_setting(settings.key_encryption_key.get_secret_value())
            deps = ShopifyDeps(app, pool, redis, settings.redis_key_prefix, kek, http, publish)
            yield fake, deps, shop, token
        await redis.aclose()
        pool.close()
        await pool.wait_closed()


async def pull_all(
    deps: ShopifyDeps, shop: str, token: str, **options: object
) -> tuple[list[int], RestBucket]:
    bucket = RestBucket(deps, shop, leak_per_second=LEAK)
    ids = []
    async for page in pull_customers(deps, shop, token, page_size=50, bucket=bucket, **options):  # type: ignore[arg-type]
        ids += [c["id"] for c in page]
    return ids, bucket


async def test_two_pullers_share_the_bucket_and_never_overrun_it(
    world: tuple[FakeShopify, ShopifyDeps, str, str],
) -> None:
    fake, deps, shop, token = world
    (first, one), (second, two) = await asyncio.gather(
        pull_all(deps, shop, token), pull_all(deps, shop, token)
    )
    assert len(first) == len(set(first)) == 3000 and sorted(first) == sorted(second)
    assert fake.shops[shop].rest_bucket.refused == 0  # steady state: no 429
    assert one.stats.throttled == two.stats.throttled == 0
    assert one.stats.waited + two.stats.waited > 0  # 120 calls into a 40-deep bucket: they had to wait
    ratio = REGISTRY.get_sample_value("core_shopify_api_bucket_used_ratio", {"shop": shop})
    assert ratio is not None and 0 < ratio <= 1


async def test_a_forced_429_is_retried_after_retry_after(
    world: tuple[FakeShopify, ShopifyDeps, str, str],
) -> None:
    fake, deps, shop, token = world
    fake.shops[shop].force_429 = 1
    started = time.monotonic()
    ids, bucket = await pull_all(deps, shop, token)
    assert len(ids) == 3000 and bucket.stats.throttled == 1
    assert time.monotonic() - started >= 1.0  # the fake's Retry-After was at least 1 s


async def test_an_incremental_pull_gets_only_what_changed(
    world: tuple[FakeShopify, ShopifyDeps, str, str],
) -> None:
    fake, deps, shop, token = world
    since = iso(time.time() - 1)
    changed = {c.id for c in fake.shops[shop].book.touch(500)}
    ids, _ = await pull_all(deps, shop, token, updated_since=since)
    assert set(ids) == changed and len(ids) == 500


async def test_a_bulk_operation_streams_every_customer_and_one_runs_at_a_time(
    world: tuple[FakeShopify, ShopifyDeps, str, str],
) -> None:
    from core_app.services.shopify_bulk import bulk_customers

    fake, deps, shop, token = world

    async def pull() -> list[str]:
        return [c["id"] async for page in bulk_customers(deps, shop, token, poll_seconds=0.05) for c in page]

    first, second = await asyncio.gather(pull(), pull())
    assert len(first) == len(set(first)) == 3000 and sorted(first) == sorted(second)
    assert sorted(first) == sorted(str(c.id) for c in fake.shops[shop].book.customers)


async def test_a_failed_bulk_operation_yields_its_partial_data_then_fails(
    world: tuple[FakeShopify, ShopifyDeps, str, str],
) -> None:
    from core_app.domain.errors import Unavailable
    from core_app.services.shopify_bulk import bulk_customers

    fake, deps, shop, token = world
    fake.bulk_fail_after = 1000
    seen: list[str] = []
    with pytest.raises(Unavailable, match="FAILED"):
        async for page in bulk_customers(deps, shop, token, poll_seconds=0.05):
            seen += [c["id"] for c in page]
    assert len(seen) == 1000


async def test_an_expired_bulk_url_runs_the_operation_again(
    world: tuple[FakeShopify, ShopifyDeps, str, str],
) -> None:
    from core_app.domain.errors import Unavailable
    from core_app.services.shopify_bulk import bulk_customers

    fake, deps, shop, token = world
    fake.bulk_url_ttl = -1  # every URL is born expired: three runs, then a clear failure
    with pytest.raises(Unavailable, match="expiring"):
        async for _page in bulk_customers(deps, shop, token, poll_seconds=0.05):
            pass


async def test_an_uninstall_mid_pull_stops_it_without_retries(
    world: tuple[FakeShopify, ShopifyDeps, str, str],
) -> None:
    from core_app.services.shopify_pull import TokenRefused

    fake, deps, shop, token = world
    bucket = RestBucket(deps, shop, leak_per_second=LEAK)
    pages = 0
    with pytest.raises(TokenRefused):
        async for _page in pull_customers(deps, shop, token, page_size=50, bucket=bucket):
            pages += 1
            if pages == 2:
                await fake.uninstall(shop)  # Shopify revokes the token
    assert pages == 2 and bucket.stats.requests == 3  # the refused call was not retried
