"""SQL for customers. Every query is scoped by merchant_id: there is no cross-tenant path."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiopg

from core_app.db import fetch_one
from core_app.domain.customer import CustomerState

_SELECT_CUSTOMER = """
SELECT id::text AS customer_id, merchant_id::text AS merchant_id, email_hash, rfm_score, metadata,
       version, rfm_as_of, created_at, updated_at
  FROM customers
 WHERE merchant_id = %s AND id = %s
"""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="milliseconds") + "Z" if value is not None else None


def _state_from_row(row: dict[str, Any]) -> CustomerState:
    return CustomerState(
        merchant_id=row["merchant_id"],
        customer_id=row["customer_id"],
        email_hash=row["email_hash"],
        rfm_score=row["rfm_score"] or {},
        metadata=row["metadata"] or {},
        version=row["version"],
        rfm_as_of=row["rfm_as_of"],
        created_at=_iso(row["created_at"]),
        updated_at=_iso(row["updated_at"]),
    )


async def fetch_customer(pool: aiopg.Pool, merchant_id: str, customer_id: str) -> CustomerState | None:
    row = await fetch_one(pool, _SELECT_CUSTOMER, (merchant_id, customer_id))
    return _state_from_row(row) if row is not None else None
