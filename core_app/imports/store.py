"""SQL of imports: import logs, and customers looked up and created in batches.

New customers are inserted here in one statement per batch; the `trg_encrypt_email` trigger encrypts
the email and computes `email_hash` exactly as for any other insert (docs/decisions.md D7). Existing
customers are never updated here: their changes go to the worker that owns them (D51).
"""

from __future__ import annotations

import json
from typing import Any

import aiopg
import psycopg2.extras

from core_app.db import fetch_one
from core_app.repository import iso

_LOG_COLUMNS = """
    import_id::text AS import_id, merchant_id::text AS merchant_id, source, status, file_url,
    record_count, error_count, error_log, failure_reason, version, created_at, updated_at
"""


def _log(row: dict[str, Any]) -> dict[str, Any]:
    return row | {"created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"])}


async def insert_import_log(
    pool: aiopg.Pool, import_id: str, merchant_id: str, source: str, file_url: str
) -> dict[str, Any]:
    """The `pending` row, version 0 (the import agent's table writes carry versions 1, 2, ...).
    Raises psycopg2 ForeignKeyViolation for an unknown merchant."""
    row = await fetch_one(
        pool,
        f"""INSERT INTO customer_import_logs (import_id, merchant_id, source, status, file_url, version)
            VALUES (%s, %s, %s, 'pending', %s, 0) RETURNING {_LOG_COLUMNS}""",
        (import_id, merchant_id, source, file_url),
    )
    assert row is not None
    return _log(row)


async def fail_import_log(pool: aiopg.Pool, merchant_id: str, import_id: str, reason: str) -> None:
    """Mark a log failed straight in PostgreSQL: for an import whose job never reached the agent."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            """UPDATE customer_import_logs SET status = 'failed', failure_reason = %s, version = version + 1,
                      error_log = jsonb_build_object('count', 0, 'errors', '[]'::jsonb,
                                                     'truncated', false, 'failure_reason', %s::text)
                WHERE merchant_id = %s AND import_id = %s AND status = 'pending'""",
            (reason, reason, merchant_id, import_id),
        )


async def fetch_import_log(pool: aiopg.Pool, merchant_id: str, import_id: str) -> dict[str, Any] | None:
    row = await fetch_one(
        pool,
        f"SELECT {_LOG_COLUMNS} FROM customer_import_logs WHERE merchant_id = %s AND import_id = %s",
        (merchant_id, import_id),
    )
    return _log(row) if row is not None else None


async def list_import_logs(
    pool: aiopg.Pool, merchant_id: str, status: str | None, limit: int
) -> list[dict[str, Any]]:
    sql = f"SELECT {_LOG_COLUMNS} FROM customer_import_logs WHERE merchant_id = %s"
    params: list[Any] = [merchant_id]
    if status is not None:
        sql += " AND status = %s"
        params.append(status)
    sql += " ORDER BY created_at DESC, import_id LIMIT %s"
    params.append(limit)
    async with pool.acquire() as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        await cur.execute(sql, params)
        return [_log(dict(row)) for row in await cur.fetchall()]


_EXISTING = """
SELECT email_hash, id::text FROM customers WHERE merchant_id = %s AND email_hash = ANY(%s)
"""

# ON CONFLICT DO NOTHING without a target covers both the email hash (a customer created meanwhile)
# and the primary key (a re-run of this import whose customer changed email since).
_INSERT_NEW = """
INSERT INTO customers (id, merchant_id, email, metadata)
SELECT r.id, %s::uuid, r.email, r.metadata
  FROM jsonb_to_recordset(%s::jsonb) AS r(id uuid, email text, metadata jsonb)
ON CONFLICT DO NOTHING
RETURNING email_hash, id::text
"""

_WAKE_PARKED = """
UPDATE parked_events SET next_attempt_at = CURRENT_TIMESTAMP
 WHERE merchant_id = %s AND customer_id = ANY(%s::uuid[])
"""


async def existing_customers(pool: aiopg.Pool, merchant_id: str, hashes: list[str]) -> dict[str, str]:
    """email_hash -> customer_id for the merchant's customers among `hashes`."""
    if not hashes:
        return {}
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(_EXISTING, (merchant_id, hashes))
        return dict(await cur.fetchall())


async def insert_customers(pool: aiopg.Pool, merchant_id: str, rows: list[dict[str, Any]]) -> dict[str, str]:
    """Insert `rows` ({id, email, metadata}) in one statement; email_hash -> id of those inserted."""
    if not rows:
        return {}
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(_INSERT_NEW, (merchant_id, json.dumps(rows)))
        inserted = dict(await cur.fetchall())
        if inserted:  # events parked for these customers are due now (docs/decisions.md D103)
            await cur.execute(_WAKE_PARKED, (merchant_id, list(inserted.values())))
        return inserted
