"""Shopify's three mandatory compliance webhooks, each tracked as a GDPR request with its 30-day
deadline (core_app/services/gdpr_requests.py, docs/decisions.md D160):

- `customers/data_request` -> the customer's data export (core_app/services/gdpr_export.py);
- `customers/redact` -> a `gdpr_request.created` REDACT for the customer with that email, so the
  existing erasure path does the work (the pipeline marks the request done once it is applied);
- `shop/redact` -> the shop's purge (core_app/services/shopify_purge.py).

Request ids derive from the shop and Shopify's ids, so a redelivery finds the request it made.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core_app import topics
from core_app.domain.gdpr import GdprRequest, request_id
from core_app.services import gdpr_requests
from core_app.services.gdpr_deps import GdprDeps
from core_app.services.gdpr_export import build_export
from core_app.services.shopify_app import ShopifyDeps
from core_app.services.shopify_purge import purge_shop

if TYPE_CHECKING:
    from core_app.services.shopify_webhooks import WebhookDelivery


def _received(delivery: WebhookDelivery) -> datetime:
    """When Shopify raised the request (its deadline runs from then), else now."""
    stamp = delivery.triggered_at
    return datetime.fromtimestamp(stamp, UTC) if stamp is not None else datetime.now(UTC)


def _email(delivery: WebhookDelivery) -> str | None:
    customer = delivery.payload.get("customer")
    email = customer.get("email") if isinstance(customer, dict) else None
    return email if isinstance(email, str) and "@" in email else None


async def _find_customer(deps: ShopifyDeps, merchant_id: str | None, delivery: WebhookDelivery) -> str | None:
    email = _email(delivery)
    if merchant_id is None or email is None:
        return None
    return await deps.merchants.customer_by_email(merchant_id, email)


def _gdpr(deps: ShopifyDeps) -> GdprDeps:
    assert deps.gdpr is not None, "ShopifyDeps.gdpr is wired by Components.shopify"
    return deps.gdpr


async def serve_data_request(deps: ShopifyDeps, delivery: WebhookDelivery) -> str:
    gdpr = _gdpr(deps)
    merchant = await deps.merchants.find(delivery.shop)
    merchant_id = merchant["id"] if merchant else None
    asked = delivery.payload.get("data_request")
    external = str(asked.get("id")) if isinstance(asked, dict) and asked.get("id") else delivery.webhook_id
    request = GdprRequest(
        request_id("shopify", "access", f"{delivery.shop}:{external}"),
        "access",
        "shopify",
        merchant_id,
        _received(delivery),
        customer_id=await _find_customer(deps, merchant_id, delivery),
        shop_domain=delivery.shop,
        external_id=external,
    )

    async def export() -> dict[str, Any]:
        return await build_export(gdpr, request)

    result = await gdpr_requests.run_tracked(gdpr.requests, request, export)
    return "done" if result.get("export_id") else "skipped"


async def request_redaction(deps: ShopifyDeps, delivery: WebhookDelivery) -> str:
    gdpr = _gdpr(deps)
    merchant = await deps.merchants.find(delivery.shop)
    merchant_id = merchant["id"] if merchant else None
    customer_id = await _find_customer(deps, merchant_id, delivery)
    request = GdprRequest(
        request_id("shopify", "redact", f"{delivery.shop}:{delivery.webhook_id}"),
        "redact",
        "shopify",
        merchant_id,
        _received(delivery),
        customer_id=customer_id,
        shop_domain=delivery.shop,
        external_id=delivery.webhook_id,
    )
    await gdpr_requests.record(gdpr.requests, [request])
    if merchant_id is None or customer_id is None:
        # never imported, or already erased (the hash is gone with the email): nothing is held
        await gdpr_requests.finish(gdpr.requests, request, {"customer_found": False})
        return "skipped"
    record = {
        "event_id": request.id,
        "merchant_id": merchant_id,
        "customer_id": customer_id,
        "request_id": request.id,
        "request_type": "REDACT",
        "requested_by": "shopify:customers/redact",
        "occurred_at": datetime.now(UTC),
    }
    await deps.publish(topics.GDPR_REQUEST_CREATED, f"{merchant_id}:{customer_id}", record)
    return "done"


async def redact_shop(deps: ShopifyDeps, delivery: WebhookDelivery) -> str:
    gdpr = _gdpr(deps)
    merchant = await deps.merchants.find(delivery.shop)
    request = GdprRequest(
        request_id("shopify", "shop_redact", f"{delivery.shop}:{delivery.webhook_id}"),
        "shop_redact",
        "shopify",
        merchant["id"] if merchant else None,
        _received(delivery),
        shop_domain=delivery.shop,
        external_id=delivery.webhook_id,
    )
    counts: Counter[str] = Counter()  # what each attempt purged, summed over the retries

    async def purge() -> dict[str, Any]:
        purged = await purge_shop(deps, delivery.shop, delivery.webhook_id, counts)
        return purged if purged is not None else {"purged": False}

    result = await gdpr_requests.run_tracked(gdpr.requests, request, purge)
    return "skipped" if result.get("purged") is False else "done"
