"""`shop/redact` (Shopify sends it 48 h after an uninstall): purge everything the shop left here
(docs/decisions.md D127, D129).

1. Every data key of the shop's customers is shredded, in one statement: from then on every sealed
   copy (command topic, table state, changelogs, `customer.created`, exports, backups) is
   unreadable, whatever happens next.
2. The rows go in one transaction: customers, their data keys, program settings, import logs, API
   keys, exports, parked events.
3. The table entries (customers, program settings, import logs) are dropped by the owner of each
   partition, by tombstones through the changelogs: standbys, recovery and the sink drop them too.
   Rows first, tables second: an event applied in between rewrites a table entry, which the
   tombstone then removes, and the sink deletes the row it had written back.
4. The shop's Redis keys: feature flags, IP allow-list, cached settings and customers, rate-limit
   windows, the shop's hash-tagged `shopify:{shop}:*` keys (webhook dedupe ids excepted, so a
   redelivery of this very webhook stays a duplicate).
5. One `merchant.purged` audit row, without PII, keeps the counts; the merchant row stays
   (uninstalled), so a later install starts empty under the same id.

A shop that was reinstalled meanwhile is not purged (Shopify would not send it; a stale delivery
must not erase a live merchant). Each step is idempotent: a retried purge finds less to do, and its
counts add up over the attempts of one delivery.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from core_app.security.flags import flags_key
from core_app.security.gate import allowlist_key, rate_key, replay_key
from core_app.services.shopify_app import ShopifyDeps

log = logging.getLogger(__name__)

UNLINK_CHUNK = 1000  # keys per pipelined round trip (one key per command: Cluster slots differ)


class StepClock:
    """Seconds per step of a purge, for its log line (docs/benchmarks.md has a 50,000-customer one)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.laps[step] = round(now - self._last, 3)
        self._last = now


def _escaped(pattern: str) -> str:
    return pattern.replace("{", "\\{").replace("}", "\\}")


async def _unlink(deps: ShopifyDeps, keys: list[str]) -> int:
    deleted = 0
    for start in range(0, len(keys), UNLINK_CHUNK):
        pipe = deps.redis.pipeline(transaction=False)
        for key in keys[start : start + UNLINK_CHUNK]:
            pipe.unlink(key)
        deleted += sum(int(n) for n in await pipe.execute())
    return deleted


async def delete_redis_keys(deps: ShopifyDeps, shop: str, merchant_id: str, customers: list[str]) -> int:
    prefix = deps.redis_prefix
    exact = [flags_key(merchant_id), allowlist_key(merchant_id), f"settings:{merchant_id}"]
    keys = [f"{prefix}{key}" for key in exact]
    keys += [f"{prefix}customer:{merchant_id}:{customer_id}" for customer_id in customers]
    # The admission keys are hash-tagged by merchant (D180); braces are literal in a SCAN pattern.
    admission = (rate_key(merchant_id, "*"), replay_key(merchant_id, "*"))
    for pattern in (*(f"{prefix}{key}" for key in admission), _escaped(deps.key(shop, "*"))):
        keys += [
            key
            async for key in deps.redis.scan_iter(match=pattern, count=1000)
            if ":webhook:" not in (key.decode() if isinstance(key, bytes) else key)
        ]
    return await _unlink(deps, keys)


async def purge_shop(
    deps: ShopifyDeps, shop: str, webhook_id: str, counts: Counter[str] | None = None
) -> dict[str, Any] | None:
    """The counts purged, or None when there is nothing to purge (unknown or reinstalled shop).
    `counts` carries what earlier attempts of the same delivery purged."""
    gdpr = deps.gdpr
    assert gdpr is not None, "ShopifyDeps.gdpr is wired by Components.shopify"
    merchant = await deps.merchants.find(shop)
    if merchant is None or merchant["status"] == "installed":
        return None
    merchant_id = merchant["id"]
    counts = Counter() if counts is None else counts
    clock = StepClock()
    counts["data_keys_shredded"] += await gdpr.shop_data.shred_data_keys(merchant_id)
    clock.lap("shred")
    deleted, customers = await gdpr.shop_data.delete_rows(merchant_id)
    counts.update({f"{name}_deleted": count for name, count in deleted.items()})
    clock.lap("rows")
    dropped = await gdpr.table_purges.purge(merchant_id)
    counts.update({f"table_{name}_tombstoned": count for name, count in dropped.items()})
    clock.lap("tables")
    counts["redis_keys_deleted"] += await delete_redis_keys(deps, shop, merchant_id, customers)
    clock.lap("redis")
    log.info("shop purged; seconds per step %s", clock.laps, extra={"merchant_id": merchant_id})
    result = dict(sorted(counts.items()))
    entity, details = ("merchant", merchant_id), result | {"webhook_id": webhook_id}
    await deps.merchants.audit(merchant_id, "shopify:webhook", "merchant.purged", entity, details)
    return result
