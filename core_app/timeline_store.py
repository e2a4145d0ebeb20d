"""The TimelineStore port (core_app/services/ports.py) on PostgreSQL: `customer_timeline` rows, and
whether the customer was erased (its row redacted, or its data key already shredded)."""

from __future__ import annotations

from typing import Any

import aiopg
import psycopg2.extras

from core_app.db import fetch_one
from core_app.repository import iso

_ERASED = """
SELECT (c.redacted_at IS NOT NULL OR k.shredded_at IS NOT NULL) AS erased
  FROM customers c
  LEFT JOIN customer_data_keys k ON k.merchant_id = c.merchant_id AND k.customer_id = c.id
 WHERE c.merchant_id = %s AND c.id = %s
"""
# Newest first through the primary key (merchant_id, customer_id, version), scanned backwards.
_ENTRIES = """
SELECT version, kind, change, source, event_id, occurred_at, recorded_at
  FROM customer_timeline
 WHERE merchant_id = %(merchant)s AND customer_id = %(customer)s
   AND (%(before)s::bigint IS NULL OR version < %(before)s::bigint)
   AND recorded_at >= CURRENT_TIMESTAMP - make_interval(days => %(days)s)
 ORDER BY version DESC
 LIMIT %(limit)s
"""


class PgTimelineStore:
    def __init__(self, pool: aiopg.Pool) -> None:
        self.pool = pool

    async def erased(self, merchant_id: str, customer_id: str) -> bool | None:
        row = await fetch_one(self.pool, _ERASED, (merchant_id, customer_id))
        return bool(row["erased"]) if row is not None else None

    async def entries(
        self, merchant_id: str, customer_id: str, *, before: int | None, limit: int, retention_days: int
    ) -> list[dict[str, Any]]:
        params = {
            "merchant": merchant_id,
            "customer": customer_id,
            "before": before,
            "days": retention_days,
            "limit": limit,
        }
        factory = psycopg2.extras.RealDictCursor
        async with self.pool.acquire() as conn, conn.cursor(cursor_factory=factory) as cur:
            await cur.execute(_ENTRIES, params)
            rows = await cur.fetchall()
        return [
            dict(row) | {"occurred_at": iso(row["occurred_at"]), "recorded_at": iso(row["recorded_at"])}
            for row in rows
        ]
