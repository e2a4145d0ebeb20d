"""`audit_logs` rows for security-relevant changes (flags, allow-lists, API keys, GDPR, settings)."""

from __future__ import annotations

import json
from typing import Any

import aiopg


def _details(details: dict[str, Any], merchant_id: str | None) -> str:
    return json.dumps(details | {"merchant_id": merchant_id})


def _merchant_or_none(cursor: Any, merchant_id: str | None) -> str | None:
    """audit_logs.merchant_id references merchants; an unknown merchant is kept in `details`."""
    if merchant_id is None:
        return None
    cursor.execute("SELECT 1 FROM merchants WHERE id = %s", (merchant_id,))
    return merchant_id if cursor.fetchone() else None


def write_audit(
    cursor: Any,
    *,
    merchant_id: str | None,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None,
    details: dict[str, Any],
) -> None:
    """Through a psycopg2 cursor (the CLI)."""
    known = _merchant_or_none(cursor, merchant_id)
    cursor.execute(
        "INSERT INTO audit_logs (merchant_id, actor, action, entity_type, entity_id, details)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (known, actor, action, entity_type, entity_id, _details(details, merchant_id)),
    )


async def write_audit_async(
    pool: aiopg.Pool,
    *,
    merchant_id: str | None,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None,
    details: dict[str, Any],
) -> None:
    """Through the service's pool (request paths)."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "INSERT INTO audit_logs (merchant_id, actor, action, entity_type, entity_id, details)"
            " SELECT m.id, %s, %s, %s, %s, %s FROM (SELECT %s::uuid AS wanted) w"
            " LEFT JOIN merchants m ON m.id = w.wanted",
            (
                actor,
                action,
                entity_type,
                entity_id,
                json.dumps(details | {"merchant_id": merchant_id}),
                merchant_id,
            ),
        )


class PoolAuditTrail:
    """The AuditTrail port (core_app/services/ports.py) on the service's pool."""

    def __init__(self, pool: aiopg.Pool) -> None:
        self.pool = pool

    async def write(
        self,
        *,
        merchant_id: str | None,
        actor: str,
        action: str,
        entity_type: str,
        entity_id: str | None,
        details: dict[str, Any],
    ) -> None:
        await write_audit_async(
            self.pool,
            merchant_id=merchant_id,
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            details=details,
        )
