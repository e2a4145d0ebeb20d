"""SQL for customers and audit logs. Every query is scoped by merchant_id: no cross-tenant path."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiopg
import orjson
import psycopg2.extras

from core_app.db import fetch_one, load_jsonb
from core_app.domain.customer import CustomerState

_COLUMNS = """
    id::text AS customer_id, merchant_id::text AS merchant_id, email, email_hash, rfm_score, metadata,
    version, applied_as_of, redacted_at, created_at, updated_at
"""
_SELECT_CUSTOMER = f"SELECT {_COLUMNS} FROM customers WHERE merchant_id = %s AND id = %s"
# The batch fetch (first touch: the owners of a re-import read 500 at a time) returns one JSON text
# a row, built by PostgreSQL and decoded at once, instead of a dict row with three jsonb values
# decoded one by one; the timestamps come formatted as iso() formats them.
_ISO = """'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'"""
_SELECT_CUSTOMERS_JSON = f"""
SELECT json_build_object(
           'customer_id', c.id, 'merchant_id', c.merchant_id, 'email_hash', c.email_hash,
           'rfm_score', c.rfm_score, 'metadata', c.metadata, 'version', c.version,
           'applied_as_of', c.applied_as_of, 'redacted_at', to_char(c.redacted_at, {_ISO}),
           'created_at', to_char(c.created_at, {_ISO}), 'updated_at', to_char(c.updated_at, {_ISO}))::text
  FROM customers c
  JOIN unnest(%s::uuid[], %s::uuid[]) AS wanted(merchant_id, id) USING (merchant_id, id)
"""
_LONG_NUMBER = re.compile(r"\d{19}")
_AUDIT_NAMESPACE = uuid.UUID("6b1d4a8e-3c1f-4e8f-9b1e-5c0f8c6b2a10")


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="milliseconds") + "Z" if value is not None else None


def _as_is(value: str | None) -> str | None:
    return value  # already formatted as iso() formats, by PostgreSQL (_SELECT_CUSTOMERS_JSON)


def _state_from_row(row: dict[str, Any], timestamp: Callable[[Any], str | None] = iso) -> CustomerState:
    return CustomerState(
        merchant_id=row["merchant_id"],
        customer_id=row["customer_id"],
        email=None,  # PostgreSQL's pgcrypto ciphertext stays there; state holds only the sealed form
        email_hash=row["email_hash"],
        rfm_score=row["rfm_score"] or {},
        metadata=row["metadata"] or {},
        version=row["version"],
        applied_as_of=row["applied_as_of"] or {},
        redacted_at=timestamp(row["redacted_at"]),
        created_at=timestamp(row["created_at"]),
        updated_at=timestamp(row["updated_at"]),
    )


async def fetch_customer(pool: aiopg.Pool, merchant_id: str, customer_id: str) -> CustomerState | None:
    row = await fetch_one(pool, _SELECT_CUSTOMER, (merchant_id, customer_id))
    return _state_from_row(row) if row is not None else None


async def fetch_customers(pool: aiopg.Pool, keys: list[tuple[str, str]]) -> dict[str, CustomerState]:
    """Customers for (merchant_id, customer_id) pairs in one query, by customer key."""
    if not keys:
        return {}
    merchants, customers = zip(*keys, strict=True)
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(_SELECT_CUSTOMERS_JSON, (list(merchants), list(customers)))
        rows = await cur.fetchall()
    states = (_state_from_row(_decode_row(text), _as_is) for (text,) in rows)
    return {state.key: state for state in states}


def _decode_row(text: str) -> dict[str, Any]:
    """orjson, unless a number may have 19+ digits: load_jsonb reads those as floats (db.py)."""
    if _LONG_NUMBER.search(text) is None:
        return orjson.loads(text)  # type: ignore[no-any-return]
    return load_jsonb(text)  # type: ignore[no-any-return]


async def fetch_merchant_customers(pool: aiopg.Pool, merchant_id: str) -> dict[str, CustomerState]:
    """Every customer of a merchant, by customer key (`core repair`: one merchant at a time)."""
    async with pool.acquire() as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM customers WHERE merchant_id = %s", (merchant_id,))
        rows = await cur.fetchall()
    states = (_state_from_row(dict(row)) for row in rows)
    return {state.key: state for state in states}


async def record_audit(
    pool: aiopg.Pool,
    *,
    merchant_id: str,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    details: dict[str, Any],
    idempotency_key: str,
) -> None:
    """Insert one audit row; the same `idempotency_key` never writes twice (at-least-once safe)."""
    audit_id = uuid.uuid5(_AUDIT_NAMESPACE, f"{action}:{idempotency_key}")
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            """INSERT INTO audit_logs (id, merchant_id, actor, action, entity_type, entity_id, details)
               VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING""",
            (str(audit_id), merchant_id, actor, action, entity_type, entity_id, json.dumps(details)),
        )


_INSERT_CUSTOMER = f"""
INSERT INTO customers (id, merchant_id, email, metadata) VALUES (%s, %s, %s, %s)
ON CONFLICT (merchant_id, id) DO NOTHING
RETURNING {_COLUMNS}
"""


async def insert_customer(
    pool: aiopg.Pool, merchant_id: str, customer_id: str, email: str, metadata: dict[str, Any]
) -> CustomerState:
    """Create the row (the trigger encrypts and hashes the email). Replaying the same id is a no-op.

    Raises psycopg2 UniqueViolation when the merchant already has this email, ForeignKeyViolation
    when the merchant does not exist.
    """
    row = await fetch_one(pool, _INSERT_CUSTOMER, (customer_id, merchant_id, email, json.dumps(metadata)))
    if row is not None:
        return _state_from_row(row)
    existing = await fetch_customer(pool, merchant_id, customer_id)
    assert existing is not None, "ON CONFLICT on the primary key means the row exists"
    return existing


async def change_email(pool: aiopg.Pool, merchant_id: str, customer_id: str, email: str) -> tuple[str, str]:
    """Store a new email; returns (ciphertext, hash). Raises UniqueViolation if another customer has it."""
    row = await fetch_one(
        pool,
        "UPDATE customers SET email = %s WHERE merchant_id = %s AND id = %s RETURNING email, email_hash",
        (email, merchant_id, customer_id),
    )
    if row is None:
        raise LookupError(customer_id)
    return row["email"], row["email_hash"]


_SELECT_SETTINGS = """
SELECT id::text AS id, merchant_id::text AS merchant_id, rfm_thresholds, loyalty_config, version,
       created_at, updated_at
  FROM program_settings WHERE merchant_id = %s
"""


async def fetch_settings(pool: aiopg.Pool, merchant_id: str) -> dict[str, Any] | None:
    row = await fetch_one(pool, _SELECT_SETTINGS, (merchant_id,))
    if row is None:
        return None
    return row | {"created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"])}


async def merchant_exists(pool: aiopg.Pool, merchant_id: str) -> bool:
    return await fetch_one(pool, "SELECT 1 AS found FROM merchants WHERE id = %s", (merchant_id,)) is not None
