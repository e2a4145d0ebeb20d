"""Pulling a shop's customers from the Admin REST API within its rate limit, shared by all workers.

Shopify's REST limit is a leaky bucket per shop and app (40 deep, leaking 2/s on standard plans,
larger on Plus; the depth is in every answer's `X-Shopify-Shop-Api-Call-Limit: used/depth`). Every
worker pulling for a shop takes a slot from one mirror of that bucket in Redis before each call (a
Lua script under `shopify:{shop}:rest_bucket`, hash-tagged so it stays in one Cluster slot), and the
mirror is corrected from each answer's header. A 429 is still possible (another app's calls do not
count here: they do in Shopify's bucket) and is obeyed: wait `Retry-After`, try the same page again.

Pages are 250 customers (Shopify's cap), followed through the `Link` header's `page_info` cursor;
`updated_at_min` limits a re-run to what changed since the last sync. The import pipeline writes
them in batches of IMPORT_BATCH_SIZE (500) rows: two pages a batch (docs/decisions.md D125).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from core_app.domain.errors import Unavailable
from core_app.domain.shopify import call_limit, next_page_info
from core_app.services.ports import ShopifyCalls
from core_app.services.shopify_metrics import bucket_used_ratio

log = logging.getLogger(__name__)

PAGE_SIZE = 250
DEFAULT_CAPACITY = 40
HEADROOM = 2  # slots left free for the app's other calls (webhook registration, ...)
MAX_ATTEMPTS = 8

# KEYS[1] bucket hash; ARGV: capacity, leak per second, headroom. Returns seconds to wait (0: taken).
_TAKE = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1e6
local capacity, leak, headroom = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local level = tonumber(redis.call('HGET', KEYS[1], 'level') or '0')
local stamp = tonumber(redis.call('HGET', KEYS[1], 'stamp') or tostring(now))
level = math.max(0, level - (now - stamp) * leak)
local wait = 0
if level + 1 > capacity - headroom then
  wait = (level + 1 - (capacity - headroom)) / leak
else
  level = level + 1
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], 120)
return tostring(wait)
"""
# KEYS[1] bucket hash; ARGV: the level Shopify reported. Only raises the mirror: answers arrive out of
# order, and a lower figure from an older answer must not free slots that later calls used.
_OBSERVE = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1e6
local level = tonumber(redis.call('HGET', KEYS[1], 'level') or '0')
local seen = tonumber(ARGV[1])
if seen > level then
  redis.call('HSET', KEYS[1], 'level', tostring(seen), 'stamp', tostring(now))
  redis.call('EXPIRE', KEYS[1], 120)
end
return 1
"""


class TokenRefused(Unavailable):
    """Shopify refused the token (the app was uninstalled): retrying cannot help."""


@dataclass
class PullStats:
    requests: int = 0
    throttled: int = 0  # 429 answers obeyed
    waited: float = 0.0  # seconds spent waiting for the shared bucket
    customers: int = 0


@dataclass
class RestBucket:
    """The shop's REST bucket as every worker sees it (Redis)."""

    deps: ShopifyCalls
    shop: str
    capacity: int = DEFAULT_CAPACITY
    leak_per_second: float | None = None  # None: Shopify's ratio, depth / 20 (40 -> 2/s, 400 -> 20/s)
    stats: PullStats = field(default_factory=PullStats)

    @property
    def key(self) -> str:
        return self.deps.key(self.shop, "rest_bucket")

    @property
    def leak(self) -> float:
        return self.leak_per_second or self.capacity / 20

    async def take(self) -> None:
        while True:
            wait = float(await self.deps.redis.eval(_TAKE, 1, self.key, self.capacity, self.leak, HEADROOM))
            if wait <= 0:
                return
            self.stats.waited += wait
            await asyncio.sleep(wait)

    async def observe(self, header: str | None) -> None:
        limit = call_limit(header)
        if limit is None:
            return
        used, self.capacity = limit
        bucket_used_ratio.labels(self.shop).set(used / self.capacity if self.capacity else 0.0)
        await self.deps.redis.eval(_OBSERVE, 1, self.key, used)


async def _get_page(
    deps: ShopifyCalls, bucket: RestBucket, token: str, params: dict[str, str]
) -> tuple[list[dict[str, Any]], str | None]:
    url = deps.app.admin_url(bucket.shop, "customers.json")
    for _attempt in range(MAX_ATTEMPTS):
        await bucket.take()
        bucket.stats.requests += 1
        try:
            async with deps.http.get(
                url, params=params, headers={"X-Shopify-Access-Token": token}
            ) as response:
                await bucket.observe(response.headers.get("X-Shopify-Shop-Api-Call-Limit"))
                if response.status == 429:
                    bucket.stats.throttled += 1
                    await asyncio.sleep(float(response.headers.get("Retry-After", "2")))
                    continue
                if response.status >= 500:
                    await asyncio.sleep(1.0)
                    continue
                if response.status in (401, 402, 403, 404):  # uninstalled, frozen or closed shop
                    raise TokenRefused(f"Shopify refused the shop's token ({response.status})")
                if response.status != 200:
                    raise Unavailable(f"Shopify answered {response.status} to customers.json")
                body = await response.json()
                return body["customers"], next_page_info(response.headers.get("Link"))
        except (aiohttp.ClientError, TimeoutError):
            await asyncio.sleep(1.0)
    raise Unavailable(f"customers.json did not answer after {MAX_ATTEMPTS} tries")


async def pull_customers(
    deps: ShopifyCalls,
    shop: str,
    token: str,
    *,
    updated_since: str | None = None,
    page_size: int = PAGE_SIZE,
    bucket: RestBucket | None = None,
) -> AsyncIterator[list[dict[str, Any]]]:
    """The shop's customers, one page (a list of REST customer objects) at a time."""
    bucket = bucket or RestBucket(deps, shop)
    params = {"limit": str(page_size)}
    if updated_since:
        params["updated_at_min"] = updated_since
    while True:
        customers, cursor = await _get_page(deps, bucket, token, params)
        bucket.stats.customers += len(customers)
        if customers:
            yield customers
        if cursor is None:
            return
        params = {"limit": str(page_size), "page_info": cursor}  # the cursor carries the filters
