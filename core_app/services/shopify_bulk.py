"""Full pulls through a GraphQL bulk operation: Shopify runs the query on its side and hands back a
JSONL file, which is streamed line by line (never whole in memory).

One bulk query per shop and app runs at a time (Shopify's rule): a Redis lock
`shopify:{shop}:bulk_lock` keeps this service's workers from colliding, and an operation already
running (another process, a crashed run) is waited for. Cost is read from
`extensions.cost.throttleStatus` (`currentlyAvailable`, `restoreRate`) on every answer, never assumed:
a THROTTLED answer waits until the needed points have been restored. An expired result URL runs the
operation again; a FAILED operation's `partialDataUrl` is streamed, then the pull fails as transient,
so the import retries and skips what it already has.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from core_app.domain.errors import Unavailable
from core_app.services.ports import ShopifyCalls
from core_app.services.shopify_pull import PAGE_SIZE, TokenRefused

log = logging.getLogger(__name__)

CUSTOMERS_QUERY = """
{ customers { edges { node {
  id email firstName lastName phone numberOfOrders amountSpent { amount currencyCode } tags
  emailMarketingConsent { marketingState } createdAt updatedAt
} } } }
"""
RUN = (
    "mutation($q: String!) { bulkOperationRunQuery(query: $q) {"
    " bulkOperation { id status } userErrors { field message } } }"
)
POLL = "{ currentBulkOperation { id status errorCode objectCount url partialDataUrl } }"
RUNNING = ("CREATED", "RUNNING", "CANCELING")
LOCK_SECONDS = 3600


async def graphql(deps: ShopifyCalls, shop: str, token: str, query: str, variables: dict[str, Any]) -> Any:
    """The `data` of one Admin GraphQL call, waiting out THROTTLED answers by their own figures."""
    url = deps.app.admin_url(shop, "graphql.json")
    for _attempt in range(20):
        try:
            async with deps.http.post(
                url, json={"query": query, "variables": variables}, headers={"X-Shopify-Access-Token": token}
            ) as response:
                if response.status in (401, 402, 403, 404):
                    raise TokenRefused(f"Shopify refused the shop's token ({response.status})")
                if response.status >= 500 or response.status == 429:
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError):
            await asyncio.sleep(1.0)
            continue
        cost = (body.get("extensions") or {}).get("cost") or {}
        errors = body.get("errors") or []
        if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
            status = cost.get("throttleStatus") or {}
            missing = float(cost.get("requestedQueryCost") or 1) - float(
                status.get("currentlyAvailable") or 0
            )
            await asyncio.sleep(max(missing, 1.0) / float(status.get("restoreRate") or 50))
            continue
        if errors:
            raise Unavailable(f"Shopify GraphQL error: {errors[0].get('message')}")
        return body["data"]
    raise Unavailable("Shopify GraphQL did not answer")


async def _current(deps: ShopifyCalls, shop: str, token: str) -> dict[str, Any] | None:
    return (await graphql(deps, shop, token, POLL, {}))["currentBulkOperation"]


async def run_bulk(deps: ShopifyCalls, shop: str, token: str, poll_seconds: float = 1.0) -> dict[str, Any]:
    """Start the customers bulk query (after any running one) and poll it to its end."""
    while True:
        answer = (await graphql(deps, shop, token, RUN, {"q": CUSTOMERS_QUERY}))["bulkOperationRunQuery"]
        if not answer["userErrors"]:
            break
        if "in progress" not in answer["userErrors"][0]["message"]:
            raise Unavailable(f"bulk operation refused: {answer['userErrors'][0]['message']}")
        await asyncio.sleep(poll_seconds)  # someone else's operation: wait for it to end
    while True:
        current = await _current(deps, shop, token)
        if current is not None and current["status"] not in RUNNING:
            return current
        await asyncio.sleep(poll_seconds)


def rest_shape(node: dict[str, Any]) -> dict[str, Any]:
    """A bulk JSONL Customer node in the REST customer's field names (what the import renders)."""
    consent = (node.get("emailMarketingConsent") or {}).get("marketingState") or ""
    return {
        "id": str(node.get("id", "")).rsplit("/", 1)[-1],
        "email": node.get("email"),
        "first_name": node.get("firstName"),
        "last_name": node.get("lastName"),
        "phone": node.get("phone"),
        "orders_count": node.get("numberOfOrders") or 0,
        "total_spent": (node.get("amountSpent") or {}).get("amount") or "0",
        "tags": ", ".join(node.get("tags") or []),
        "email_marketing_consent": {"state": consent.lower()},
    }


async def _stream(deps: ShopifyCalls, url: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Pages of customers from a JSONL result, read line by line; PermissionError if it expired."""
    async with deps.http.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=60)) as response:
        if response.status == 403:
            raise PermissionError("the bulk result URL expired")
        if response.status != 200:
            raise Unavailable(f"the bulk result answered {response.status}")
        page: list[dict[str, Any]] = []
        async for line in response.content:
            if line.strip():
                page.append(rest_shape(json.loads(line)))
                if len(page) == PAGE_SIZE:
                    yield page
                    page = []
        if page:
            yield page


async def bulk_customers(
    deps: ShopifyCalls, shop: str, token: str, poll_seconds: float = 1.0
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every customer of the shop, in pages, through one bulk operation."""
    lock = deps.key(shop, "bulk_lock")
    while True:  # one bulk operation per shop: this service's other workers wait their turn
        if await deps.redis.set(lock, "1", nx=True, ex=LOCK_SECONDS):
            break
        await asyncio.sleep(poll_seconds)
    try:
        for _attempt in range(3):
            result = await run_bulk(deps, shop, token, poll_seconds)
            url = result.get("url") or result.get("partialDataUrl")
            if url is None:
                if result["status"] == "COMPLETED":
                    return  # a shop without customers
                raise Unavailable(f"bulk operation {result['status']}: {result.get('errorCode')}")
            try:
                async for page in _stream(deps, url):
                    yield page
            except PermissionError:
                log.warning("bulk result expired; running it again", extra={"shop": shop})
                continue
            if result["status"] != "COMPLETED":
                raise Unavailable(
                    f"bulk operation {result['status']} ({result.get('errorCode')}) after partial data"
                )
            return
        raise Unavailable("bulk results kept expiring")
    finally:
        await deps.redis.delete(lock)
