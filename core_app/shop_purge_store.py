"""A purged shop's rows in PostgreSQL: the ShopData port (core_app/services/gdpr_ports.py, D129).

The data keys are shredded first, in their own statement: from then on every sealed copy of the
shop's customers (Kafka, RocksDB, backups, exports) is unreadable, whatever happens next. The rows
then go: the customers in chunks, the rest in one transaction. Each step is idempotent, so a purge
cut short is finished by its retry. The merchant row and its audit trail stay (no PII).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiopg

T = TypeVar("T")

_SHRED = """
UPDATE customer_data_keys SET wrapped_key = NULL, shredded_at = COALESCE(shredded_at, now())
 WHERE merchant_id = %s AND wrapped_key IS NOT NULL
"""
# Customers go in chunks, each statement well inside the pool's query timeout however large the
# shop; the merchant's segment counts are deleted at the end instead of being decremented row by row
# (migration 0019's delete trigger leaves out the merchant named by `core.purging_merchant`).
CUSTOMER_CHUNK = 5000
_CUSTOMERS = """
DELETE FROM customers WHERE merchant_id = %(m)s
   AND id IN (SELECT id FROM customers WHERE merchant_id = %(m)s LIMIT %(n)s)
RETURNING id::text
"""
_DELETES = (
    ("customer_data_keys", "DELETE FROM customer_data_keys WHERE merchant_id = %s"),
    ("program_settings", "DELETE FROM program_settings WHERE merchant_id = %s"),
    ("import_logs", "DELETE FROM customer_import_logs WHERE merchant_id = %s"),
    ("api_keys", "DELETE FROM api_keys WHERE merchant_id = %s"),
    ("gdpr_exports", "DELETE FROM gdpr_exports WHERE merchant_id = %s"),
    ("parked_events", "DELETE FROM parked_events WHERE merchant_id = %s"),
    ("segment_counts", "DELETE FROM customer_segment_counts WHERE merchant_id = %s"),
)


class PgShopData:
    def __init__(self, pool: aiopg.Pool, chunk: int = CUSTOMER_CHUNK) -> None:
        self.pool = pool
        self.chunk = chunk

    async def shred_data_keys(self, merchant_id: str) -> int:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(_SHRED, (merchant_id,))
            return int(cur.rowcount)

    async def delete_rows(self, merchant_id: str) -> tuple[dict[str, int], list[str]]:
        customers: list[str] = []
        while True:
            chunk = await self._transaction(merchant_id, self._delete_customers)
            customers += chunk
            if len(chunk) < self.chunk:
                break
        counts = await self._transaction(merchant_id, self._delete_the_rest)
        counts.pop("segment_counts")
        return {"customers": len(customers)} | counts, customers

    async def _delete_customers(self, cur: Any, merchant_id: str) -> list[str]:
        await cur.execute(_CUSTOMERS, {"m": merchant_id, "n": self.chunk})
        return [row[0] for row in await cur.fetchall()]

    async def _delete_the_rest(self, cur: Any, merchant_id: str) -> dict[str, int]:
        counts = {}
        for name, sql in _DELETES:
            await cur.execute(sql, (merchant_id,))
            counts[name] = int(cur.rowcount)
        return counts

    async def _transaction(self, merchant_id: str, work: Callable[[Any, str], Awaitable[T]]) -> T:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("BEGIN")
            try:
                await cur.execute("SELECT set_config('core.purging_merchant', %s, true)", (merchant_id,))
                result = await work(cur, merchant_id)
                await cur.execute("COMMIT")
            except BaseException:
                if not conn.closed:
                    await cur.execute("ROLLBACK")
                raise
        return result
