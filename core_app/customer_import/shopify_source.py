"""The `shopify_api` import source: the shop's customers pulled from the Admin API
(core_app/services/shopify_pull.py, shopify_bulk.py: within the shop's limits), rendered, page by page, as
Shopify's own customer export CSV, so the `shopify` format reads them and the rest of the import
pipeline (batches, dedupe, progress, error log) is the one every file import uses.

The job's `file_url` is the shop's `customers.json` URL (set by the import service). Its
`updated_at_min`, when present, makes the run incremental (REST pages from that time); without
it the run is a full pull through one GraphQL bulk operation (core_app/services/shopify_bulk.py).
The merchant's token is read from PostgreSQL when the run starts; an uninstalled merchant has none
and the import fails.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiopg

from core_app.customer_import.fetch import Download, FetchError
from core_app.customer_import.job import ImportJob
from core_app.domain.errors import Unavailable, ValidationFailed
from core_app.services import merchants
from core_app.services.shopify_app import ShopifyDeps
from core_app.services.shopify_bulk import bulk_customers
from core_app.services.shopify_pull import TokenRefused, pull_customers

HEADER = [
    "Customer ID",
    "First Name",
    "Last Name",
    "Email",
    "Accepts Email Marketing",
    "Total Spent",
    "Total Orders",
    "Tags",
    "Phone",
]


def export_row(customer: dict[str, Any]) -> list[str]:
    """One REST customer as a row of Shopify's customer export."""
    consent = (customer.get("email_marketing_consent") or {}).get("state")
    return [
        str(customer.get("id") or ""),
        customer.get("first_name") or "",
        customer.get("last_name") or "",
        customer.get("email") or "",
        "yes" if consent == "subscribed" else "no",
        str(customer.get("total_spent") or "0"),
        str(customer.get("orders_count") or 0),
        customer.get("tags") or "",
        customer.get("phone") or "",
    ]


def render(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


@asynccontextmanager
async def open_shopify(job: ImportJob, deps: ShopifyDeps) -> AsyncIterator[Download]:
    merchant = await merchants.find_merchant(deps.pool, job.merchant_id)
    token = await merchants.access_token(deps.pool, deps.kek, job.merchant_id)
    if merchant is None or token is None:
        raise FetchError("the merchant has not installed the app (no Shopify token)", transient=False)
    since = parse_qs(urlsplit(job.file_url).query).get("updated_at_min", [None])[0]

    async def chunks() -> AsyncIterator[bytes]:
        yield render([HEADER])
        try:
            shop = merchant["shop_domain"]
            # a full pull is one bulk operation; an incremental one pages REST from `since`
            pages = (
                bulk_customers(deps, shop, token)
                if since is None
                else pull_customers(deps, shop, token, updated_since=since)
            )
            async for page in pages:
                yield render([export_row(customer) for customer in page])
        except TokenRefused as exc:
            raise FetchError(str(exc), transient=False) from None
        except Unavailable as exc:
            raise FetchError(str(exc), transient=True) from None

    yield Download(chunks(), None)


async def source_url(deps_pool: aiopg.Pool, shop_url: str, merchant_id: str, requested: Any) -> str:
    """The job's file_url for a `shopify_api` import: the shop's customers.json, with
    `updated_at_min` set to the start of the merchant's last completed `shopify_api` import (a
    re-run pulls only what changed since)."""
    if requested not in (None, ""):
        raise ValidationFailed("file_url", "must be empty for source shopify_api (the shop's Admin API)")
    merchant = await merchants.find_merchant(deps_pool, merchant_id)
    if merchant is None or not merchant["has_token"]:
        raise ValidationFailed("source", "shopify_api needs a merchant that installed the app")
    async with deps_pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT max(created_at) FROM customer_import_logs"
            " WHERE merchant_id = %s AND source = 'shopify_api' AND status = 'completed'",
            (merchant_id,),
        )
        (last,) = await cur.fetchone()
    url = shop_url.replace("{shop}", merchant["shop_domain"])
    query = f"?{urlencode({'updated_at_min': last.isoformat() + 'Z'})}" if last else ""
    return f"{url}/admin/customers.json{query}"
