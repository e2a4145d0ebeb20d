"""`shop/redact` (Shopify sends it 48 h after an uninstall): erase everything the shop left here.

- every customer not yet erased gets a `gdpr_request.created` REDACT, so the existing erasure path
  shreds its data key (every sealed copy in Kafka, RocksDB and backups unreadable) and erases email
  and metadata in the table (through its changelog), PostgreSQL and Redis;
- the merchant's API keys are deleted, and its Redis keys (feature flags, IP allow-list, the shop's
  hash-tagged `shopify:{shop}:*` keys) removed;
- one `audit_logs` row, without PII, keeps the counts.

A shop that was reinstalled meanwhile is not purged (Shopify would not send it; a stale delivery
must not erase a live merchant). The customer rows stay, erased (`email = 'redacted'`), as the
erasure path leaves them.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from core_app import topics
from core_app.security.audit import write_audit_async
from core_app.security.flags import flags_key
from core_app.security.gate import allowlist_key
from core_app.services import merchants
from core_app.services.shopify_app import ShopifyDeps

_NAMESPACE = uuid.UUID("5d0f3b9e-6a43-4f0e-8f5e-1c2a9b7d4e61")
PUBLISH_CHUNK = 500


async def _live_customers(deps: ShopifyDeps, merchant_id: str) -> list[str]:
    async with deps.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT id::text FROM customers WHERE merchant_id = %s AND redacted_at IS NULL", (merchant_id,)
        )
        return [row[0] for row in await cur.fetchall()]


async def _delete_api_keys(deps: ShopifyDeps, merchant_id: str) -> int:
    async with deps.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("DELETE FROM api_keys WHERE merchant_id = %s", (merchant_id,))
        return int(cur.rowcount)


async def _delete_redis_keys(deps: ShopifyDeps, shop: str, merchant_id: str) -> int:
    prefix = deps.redis_prefix
    keys = [f"{prefix}{flags_key(merchant_id)}", f"{prefix}{allowlist_key(merchant_id)}"]
    pattern = deps.key(shop, "*").replace("{", "\\{").replace("}", "\\}")
    keys += [key async for key in deps.redis.scan_iter(match=pattern, count=500)]
    deleted = 0
    for key in keys:  # one key per call: they live in different Cluster slots
        deleted += int(await deps.redis.delete(key))
    return deleted


async def _redact(deps: ShopifyDeps, merchant_id: str, customer_id: str, webhook_id: str) -> None:
    request_id = str(uuid.uuid5(_NAMESPACE, f"{webhook_id}:{customer_id}"))
    record = {
        "event_id": request_id,
        "merchant_id": merchant_id,
        "customer_id": customer_id,
        "request_id": request_id,
        "request_type": "REDACT",
        "requested_by": "shopify:shop/redact",
        "occurred_at": datetime.now(UTC),
    }
    await deps.publish(topics.GDPR_REQUEST_CREATED, f"{merchant_id}:{customer_id}", record)


async def purge_shop(deps: ShopifyDeps, shop: str, webhook_id: str) -> dict[str, Any] | None:
    """The counts purged, or None when there is nothing to purge (unknown or reinstalled shop)."""
    merchant = await merchants.find_merchant(deps.pool, shop)
    if merchant is None or merchant["status"] == "installed":
        return None
    merchant_id = merchant["id"]
    customers = await _live_customers(deps, merchant_id)
    for start in range(0, len(customers), PUBLISH_CHUNK):  # acknowledged a chunk at a time, not one by one
        chunk = customers[start : start + PUBLISH_CHUNK]
        await asyncio.gather(*(_redact(deps, merchant_id, customer_id, webhook_id) for customer_id in chunk))
    counts = {
        "customers_redacted": len(customers),
        "api_keys_deleted": await _delete_api_keys(deps, merchant_id),
        "redis_keys_deleted": await _delete_redis_keys(deps, shop, merchant_id),
    }
    await write_audit_async(
        deps.pool,
        merchant_id=merchant_id,
        actor="shopify:webhook",
        action="merchant.purged",
        entity_type="merchant",
        entity_id=merchant_id,
        details=counts | {"webhook_id": webhook_id},
    )
    return counts
