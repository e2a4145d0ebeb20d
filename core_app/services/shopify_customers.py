"""`customers/create` and `customers/update` webhooks: keep the shop's customers current between
imports (docs/decisions.md D164), through the customer write path every API write takes
(CustomerService.create / update: the key's owner applies it, PostgreSQL stores the email with
pgcrypto, the table and `customer.updated` follow).

The payload is read like a row of Shopify's customer export (the `shopify_api` import's format), so
the same whitelisted, non-PII figures are kept, under `metadata.shopify` with Shopify's
`updated_at`; names, phones, addresses and notes are read past. The customer is found by its
Shopify id (as an import or an earlier webhook recorded it), else by email. Shopify does not order
deliveries: an update older than the figures held is skipped as stale.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core_app.domain.customer_import import SHOPIFY_API, RowParser
from core_app.domain.customer_import.rows import ImportedRow
from core_app.domain.errors import Conflict
from core_app.security.principal import system_principal
from core_app.services.shopify_app import ShopifyDeps

ACTOR = system_principal("shopify-webhook")


def shopify_row(payload: dict[str, Any]) -> ImportedRow | None:
    """The payload as an export row: its email and kept figures, None without a usable email."""
    consent = payload.get("email_marketing_consent")
    state = consent.get("state") if isinstance(consent, dict) else None
    accepts = state == "subscribed" if state is not None else payload.get("accepts_marketing")
    record = {
        "Customer ID": str(payload.get("id") or ""),
        "Email": payload.get("email"),
        "Accepts Email Marketing": "yes" if accepts else "no",
        "Total Spent": str(payload.get("total_spent") or "0"),
        "Total Orders": str(payload.get("orders_count") or 0),
        "Tags": payload.get("tags") or "",
    }
    parsed = RowParser(SHOPIFY_API).parse_object(1, record)
    return parsed if isinstance(parsed, ImportedRow) else None


def _moment(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def is_stale(held: dict[str, Any], updated_at: Any) -> bool:
    """Shopify's `updated_at` of the figures held is not older than this delivery's (compared as
    times: Shopify writes the shop's UTC offset, which changes with daylight saving)."""
    shopify = held.get("shopify") if isinstance(held.get("shopify"), dict) else {}
    before, now = _moment(shopify.get("updated_at") if shopify else None), _moment(updated_at)
    return before is not None and now is not None and now <= before


async def _find(deps: ShopifyDeps, merchant_id: str, shopify_id: str, email: str) -> str | None:
    if shopify_id:
        found = await deps.merchants.customer_by_shopify_id(merchant_id, shopify_id)
        if found is not None:
            return found
    return await deps.merchants.customer_by_email(merchant_id, email)


async def sync_customer(deps: ShopifyDeps, payload: dict[str, Any], shop: str) -> str:
    """`done`, `stale` (an older update than held), or `skipped` (unknown or uninstalled shop, no
    usable email)."""
    writer = deps.customers
    assert writer is not None, "ShopifyDeps.customers is wired by Components.shopify"
    merchant = await deps.merchants.find(shop)
    row = shopify_row(payload)
    if merchant is None or merchant["status"] != "installed" or row is None:
        return "skipped"
    merchant_id, updated_at = merchant["id"], payload.get("updated_at")
    figures = {"shopify": {**row.fields, "updated_at": updated_at}}
    customer_id = await _find(deps, merchant_id, row.fields.get("external_id", ""), row.email)
    if customer_id is None:
        try:
            await writer.create(ACTOR, merchant_id, row.email, figures)
            return "done"
        except Conflict:  # created meanwhile (a concurrent delivery or import): update it instead
            customer_id = await deps.merchants.customer_by_email(merchant_id, row.email)
            if customer_id is None:
                raise
    view, _ = await writer.read(merchant_id, customer_id)
    if is_stale(view.get("metadata") or {}, updated_at):
        return "stale"
    same = await deps.merchants.customer_by_email(merchant_id, row.email) == customer_id
    await writer.update(ACTOR, merchant_id, customer_id, None if same else row.email, figures)
    return "done"
