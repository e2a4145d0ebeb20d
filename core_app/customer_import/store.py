"""SQL of imports: import logs, and customers looked up and created in batches.

New customers are inserted here in one statement per batch, their emails already encrypted and
hashed by the worker (core_app/email_cipher.py, D253) in the `trg_encrypt_email` trigger's format;
the trigger passes such values through and still encrypts any plain address (docs/decisions.md D7).
Existing customers are never updated here: their changes go to the worker that owns them (D51).
"""

from __future__ import annotations

import json
from typing import Any

import aiopg
import psycopg2.errors
import psycopg2.extras

from core_app.customer_import.shopify_source import source_url
from core_app.db import fetch_one
from core_app.domain.errors import NotFound
from core_app.repository import iso, merchant_exists, record_audit
from core_app.retry import infra_retry

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

# A row's email is either an address (the trigger encrypts and hashes it) or the worker's ciphertext
# with its email_hash (core_app/email_cipher.py, D253), which the trigger passes through.
# ON CONFLICT DO NOTHING without a target covers both the email hash (a customer created meanwhile)
# and the primary key (a re-run of this import whose customer changed email since). The rows
# inserted now get their `imported` timeline entry (a row's `entry`, D170) in the same statement.
_INSERT_NEW = """
WITH batch AS (
    SELECT r.* FROM jsonb_to_recordset(%(rows)s::jsonb)
        AS r(id uuid, email text, email_hash text, metadata jsonb, entry jsonb)
), inserted AS (
    INSERT INTO customers (id, merchant_id, email, email_hash, metadata)
    SELECT b.id, %(merchant)s::uuid, b.email, b.email_hash, b.metadata FROM batch b
    ON CONFLICT DO NOTHING
    RETURNING email_hash, id
), history AS (
    INSERT INTO customer_timeline (merchant_id, customer_id, version, kind, change, source, occurred_at)
    SELECT %(merchant)s::uuid, i.id, (b.entry ->> 'version')::bigint, b.entry ->> 'kind',
           b.entry -> 'change', b.entry -> 'source',
           to_timestamp((b.entry ->> 'at')::bigint / 1000.0) AT TIME ZONE 'UTC'
      FROM inserted i JOIN batch b ON b.id = i.id
     WHERE b.entry IS NOT NULL
    ON CONFLICT DO NOTHING
)
SELECT email_hash, id::text FROM inserted
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
    """Insert `rows` ({id, email, email_hash?, metadata, entry?}) in one statement, each with its timeline
    `entry` when it has one; email_hash -> id of those inserted."""
    if not rows:
        return {}
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(_INSERT_NEW, {"merchant": merchant_id, "rows": json.dumps(rows)})
        inserted = dict(await cur.fetchall())
        if inserted:  # events parked for these customers are due now (docs/decisions.md D103)
            await cur.execute(_WAKE_PARKED, (merchant_id, list(inserted.values())))
        return inserted


class PostgresImportLogs:
    """The ImportLogs port (core_app/services/ports.py) on PostgreSQL."""

    def __init__(self, pool: aiopg.Pool, shop_url: str) -> None:
        self.pool = pool
        self.shop_url = shop_url

    async def merchant_exists(self, merchant_id: str) -> bool:
        return await merchant_exists(self.pool, merchant_id)

    async def insert_log(
        self, import_id: str, merchant_id: str, source: str, file_url: str
    ) -> dict[str, Any]:
        try:
            return await insert_import_log(self.pool, import_id, merchant_id, source, file_url)
        except psycopg2.errors.ForeignKeyViolation:
            raise NotFound("merchant", merchant_id) from None

    async def fail_log(self, merchant_id: str, import_id: str, reason: str) -> None:
        await fail_import_log(self.pool, merchant_id, import_id, reason)

    async def fetch_log(self, merchant_id: str, import_id: str) -> dict[str, Any] | None:
        return await fetch_import_log(self.pool, merchant_id, import_id)

    async def list_logs(self, merchant_id: str, status: str | None, limit: int) -> list[dict[str, Any]]:
        return await list_import_logs(self.pool, merchant_id, status, limit)

    async def shopify_source_url(self, merchant_id: str, requested: Any) -> str:
        return await source_url(self.pool, self.shop_url, merchant_id, requested)

    async def record_audit(
        self, merchant_id: str, actor: str, action: str, import_id: str, details: dict[str, Any]
    ) -> None:
        await infra_retry()(
            record_audit,
            self.pool,
            merchant_id=merchant_id,
            actor=actor,
            action=action,
            entity_type="customer_import",
            entity_id=import_id,
            details=details,
            idempotency_key=import_id,
        )


class PostgresCustomerRows:
    """The CustomerRows port (core_app/customer_import/ports.py) on PostgreSQL."""

    def __init__(self, pool: aiopg.Pool) -> None:
        self.pool = pool

    async def existing(self, merchant_id: str, hashes: list[str]) -> dict[str, str]:
        return await existing_customers(self.pool, merchant_id, hashes)

    async def insert(self, merchant_id: str, rows: list[dict[str, Any]]) -> dict[str, str]:
        return await insert_customers(self.pool, merchant_id, rows)
