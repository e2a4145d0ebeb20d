"""Admin API pull benchmark: customers/s against the fake shop's ceiling.

    .venv/bin/python -m bench.shopify_pull [--customers 50000] [--workers 2]

The fake shop enforces Shopify's standard REST bucket (40 deep, leaking 2 requests/s) and pages of
250, so the sustained ceiling is 2 x 250 = 500 customers/s (the first ~38 calls ride the bucket's
depth). `--workers` pullers share one rate limit through Redis, as workers do; each pulls the whole shop,
so the figure is the total customers/s the shared bucket lets through.
Target: sustained rate >= 0.9 x the ceiling, and no 429 from the fake. Needs the local Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import aiohttp
from redis.asyncio import Redis

from core_app.devtools.fake_shopify import FakeShopify, running_fake_shopify
from core_app.services.shopify_app import ShopifyApp, ShopifyDeps
from core_app.services.shopify_pull import PAGE_SIZE, RestBucket, pull_customers
from core_app.settings import Settings

CEILING = 2 * PAGE_SIZE  # customers/s: leak rate x page size


async def run(customers: int, workers: int) -> int:
    settings = Settings(redis_key_prefix=f"bench:{uuid.uuid4().hex[:8]}:")
    fake = FakeShopify("bench", "bench", customers=customers)
    async with running_fake_shopify(fake), aiohttp.ClientSession() as http:
        shop = "bench.myshopify.com"
        fake.shop(shop).tokens.add("shpat_bench")
        app = ShopifyApp.from_settings(
            settings.model_copy(update={"shopify_shop_url": fake.shop_url_template()})
        )
        redis = Redis.from_url(settings.redis_dsn)

        async def publish(*_args: object) -> None: ...

        deps = ShopifyDeps(app, None, redis, settings.redis_key_prefix, b"", http, publish)  # type: ignore[arg-type]
        marks: list[tuple[float, int]] = []

        async def one() -> RestBucket:
            bucket = RestBucket(deps, shop)
            async for page in pull_customers(deps, shop, "shpat_bench", bucket=bucket):
                marks.append((time.perf_counter(), len(page)))
            return bucket

        started = time.perf_counter()
        buckets = await asyncio.gather(*(one() for _ in range(workers)))
        elapsed = time.perf_counter() - started
        await redis.aclose()
    total = sum(n for _, n in marks)
    burst = 40 - 2  # calls the bucket's depth admits at once (less the headroom)
    steady = sorted(marks)[burst:]
    steady_rate = sum(n for _, n in steady[1:]) / (steady[-1][0] - steady[0][0]) if len(steady) > 2 else 0.0
    refused = fake.shops[shop].rest_bucket.refused
    print(f"customers pulled:      {total} by {workers} worker(s) in {elapsed:.1f} s")
    print(f"requests:              {sum(b.stats.requests for b in buckets)}; 429 from the fake: {refused}")
    print(f"overall rate:          {total / elapsed:.0f} customers/s (the burst included)")
    print(f"sustained rate:        {steady_rate:.0f} customers/s after the first {burst} calls")
    print(f"ceiling:               {CEILING} customers/s (2 req/s x {PAGE_SIZE})")
    ratio = steady_rate / CEILING
    print(f"sustained / ceiling:   {ratio:.3f} (target >= 0.9)")
    return 0 if ratio >= 0.9 and refused == 0 else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(run(args.customers, args.workers)))


if __name__ == "__main__":
    main()
