"""The fake's Admin GraphQL: the customers connection, bulk operations and their JSONL files, with
Shopify's cost accounting (`extensions.cost.throttleStatus`) and THROTTLED refusals.

Requests are recognised by their root fields (`customers(`, `bulkOperationRunQuery`,
`currentBulkOperation`), which is all the service sends; anything else is a GraphQL error.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core_app.devtools.fake_shopify.server import FakeShop

BULK_IN_PROGRESS = "A bulk query operation for this app and shop is already in progress"
_UPDATED_FILTER = re.compile(r"updated_at:>=?'?([0-9T:.\-Z+]+)'?")


@dataclass
class BulkOperation:
    id: str
    path: Path
    status: str = "CREATED"
    object_count: int = 0
    error_code: str | None = None
    url: str | None = None
    partial_data_url: str | None = None
    created_at: float = field(default_factory=time.time)

    def node(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "errorCode": self.error_code,
            "objectCount": str(self.object_count),
            "fileSize": str(self.path.stat().st_size) if self.path.exists() else None,
            "url": self.url,
            "partialDataUrl": self.partial_data_url,
        }


def _cursor(customer_id: int) -> str:
    return base64.b64encode(json.dumps({"last_id": customer_id}).encode()).decode()


def _after(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(json.loads(base64.b64decode(cursor))["last_id"])
    except (ValueError, KeyError, TypeError):
        raise ValueError("Invalid cursor for current pagination") from None


def _updated_min(search: str | None) -> float | None:
    from datetime import datetime

    match = _UPDATED_FILTER.search(search or "")
    if match is None:
        return None
    return datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp()


def _int_arg(query: str, variables: dict[str, Any], name: str, default: int) -> int:
    if name in variables:
        return int(variables[name])
    match = re.search(rf"\b{name}\s*:\s*(\d+)", query)
    return int(match.group(1)) if match else default


def customers_connection(shop: FakeShop, query: str, variables: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """(data, actual cost). Shopify caps `first` at 250."""
    first = _int_arg(query, variables, "first", 50)
    if not 1 <= first <= 250:
        raise ValueError("The 'first' argument must be between 1 and 250")
    nodes = shop.book.page(_after(variables.get("after")), first, _updated_min(variables.get("query")))
    more = bool(nodes) and bool(shop.book.page(nodes[-1].id, 1, _updated_min(variables.get("query"))))
    edges = [{"cursor": _cursor(c.id), "node": c.graphql()} for c in nodes]
    page = {"hasNextPage": more, "endCursor": edges[-1]["cursor"] if edges else None}
    return {"customers": {"edges": edges, "pageInfo": page}}, 2 + len(nodes)


async def _write_bulk(
    shop: FakeShop, operation: BulkOperation, base_url: str, fail_after: int | None
) -> None:
    """Writes the JSONL file a few thousand lines at a time, yielding to the loop in between."""
    operation.status = "RUNNING"
    with operation.path.open("w", encoding="utf-8") as out:
        for index, customer in enumerate(shop.book.customers):
            if fail_after is not None and index == fail_after:
                operation.status, operation.error_code = "FAILED", "INTERNAL_SERVER_ERROR"
                out.flush()
                operation.partial_data_url = f"{base_url}/_bulk/{operation.path.name}?expires={_expiry(shop)}"
                return
            out.write(json.dumps(customer.graphql(), ensure_ascii=False) + "\n")
            operation.object_count += 1
            if index % 2000 == 1999:
                await asyncio.sleep(0)
    operation.status = "COMPLETED"
    operation.url = f"{base_url}/_bulk/{operation.path.name}?expires={_expiry(shop)}"


def _expiry(shop: FakeShop) -> int:
    return int(time.time() + shop.owner.bulk_url_ttl)


def run_bulk(shop: FakeShop, base_url: str) -> dict[str, Any]:
    current = shop.bulk
    if current is not None and current.status in ("CREATED", "RUNNING"):
        return {
            "bulkOperationRunQuery": {"bulkOperation": None, "userErrors": [{"message": BULK_IN_PROGRESS}]}
        }
    operation_id = f"gid://shopify/BulkOperation/{uuid.uuid4().int % 10**12}"
    path = shop.owner.bulk_dir / f"{uuid.uuid4().hex}.jsonl"
    operation = shop.bulk = BulkOperation(operation_id, path)
    shop.bulk_task = asyncio.get_running_loop().create_task(
        _write_bulk(shop, operation, base_url, shop.owner.bulk_fail_after)
    )
    return {"bulkOperationRunQuery": {"bulkOperation": operation.node(), "userErrors": []}}


def execute(shop: FakeShop, query: str, variables: dict[str, Any], base_url: str) -> dict[str, Any]:
    """A GraphQL response body (data or errors, and extensions.cost)."""
    if "bulkOperationRunQuery" in query:
        data, requested, actual = run_bulk(shop, base_url), 10, 10
    elif "currentBulkOperation" in query:
        data, requested, actual = {"currentBulkOperation": shop.bulk.node() if shop.bulk else None}, 1, 1
    elif re.search(r"\bcustomers\s*\(", query):
        requested = 2 + _int_arg(query, variables, "first", 50)
        if not shop.cost_bucket.spend(requested):
            return _throttled(shop, requested)
        try:
            data, actual = customers_connection(shop, query, variables)
        except ValueError as exc:
            return {"errors": [{"message": str(exc)}]}
        shop.cost_bucket.available += requested - actual  # refund the difference, as Shopify does
        return {"data": data, "extensions": _cost(shop, requested, actual)}
    else:
        return {"errors": [{"message": "Field is not supported by the fake shop", "locations": []}]}
    if not shop.cost_bucket.spend(requested):
        return _throttled(shop, requested)
    return {"data": data, "extensions": _cost(shop, requested, actual)}


def _cost(shop: FakeShop, requested: int, actual: int | None) -> dict[str, Any]:
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": shop.cost_bucket.status(),
        }
    }


def _throttled(shop: FakeShop, requested: int) -> dict[str, Any]:
    return {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
        "extensions": _cost(shop, requested, None),
    }
