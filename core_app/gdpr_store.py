"""GDPR requests and exports in PostgreSQL (`gdpr_requests`, `gdpr_exports`, migration 0019): the
GdprRequestStore and GdprExportStore ports (core_app/services/gdpr_ports.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiopg
import psycopg2.extras

from core_app.db import fetch_one
from core_app.domain.gdpr import GdprRequest, OpenRequests, SealedExport
from core_app.repository import iso

_RECORD = """
INSERT INTO gdpr_requests (id, kind, source, merchant_id, customer_id, shop_domain, external_id,
                           received_at, deadline_at)
SELECT r.id, r.kind, r.source, m.id, r.customer_id, r.shop_domain, r.external_id, r.received_at,
       r.deadline_at
  FROM jsonb_to_recordset(%s::jsonb) AS r(id uuid, kind text, source text, merchant_id uuid,
       customer_id uuid, shop_domain text, external_id text, received_at timestamp,
       deadline_at timestamp)
  LEFT JOIN merchants m ON m.id = r.merchant_id
ON CONFLICT (id) DO NOTHING
RETURNING id::text
"""
_FAILED = """
UPDATE gdpr_requests SET attempts = attempts + 1, last_error = %s,
       status = CASE WHEN %s THEN 'failed' ELSE status END
 WHERE id = %s AND status <> 'done'
"""
_FINISH = """
UPDATE gdpr_requests SET status = 'done', completed_at = now(), attempts = attempts + 1, result = %s,
       last_error = NULL
 WHERE id = %s AND status <> 'done'
RETURNING id
"""
_OPEN = """
SELECT count(*) AS open, count(*) FILTER (WHERE deadline_at < now()) AS overdue,
       COALESCE(EXTRACT(EPOCH FROM now() - min(received_at)), 0)::float AS oldest
  FROM gdpr_requests WHERE status <> 'done'
"""
_IMPORT_LOGS = """
SELECT import_id::text, source, status, record_count, error_count, created_at, updated_at
  FROM customer_import_logs WHERE merchant_id = %s AND import_id = ANY(%s::uuid[])
 ORDER BY created_at
"""
_AUDIT = """
SELECT action, actor, details, created_at FROM audit_logs
 WHERE merchant_id = %s AND entity_type = 'customer' AND entity_id = %s
 ORDER BY created_at
"""
_SAVE = """
INSERT INTO gdpr_exports (id, request_id, merchant_id, customer_id, sealed_with, key_wrapped, sealed)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE SET sealed_with = EXCLUDED.sealed_with, key_wrapped = EXCLUDED.key_wrapped,
       sealed = EXCLUDED.sealed, created_at = now()
"""
_LOAD = """
SELECT id::text, request_id::text, merchant_id::text, customer_id::text, sealed_with, key_wrapped, sealed
  FROM gdpr_exports WHERE merchant_id = %s AND id = %s
"""


def _request_row(request: GdprRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "kind": request.kind,
        "source": request.source,
        "merchant_id": request.merchant_id,
        "customer_id": request.customer_id,
        "shop_domain": request.shop_domain,
        "external_id": request.external_id,
        "received_at": request.received_at.replace(tzinfo=None).isoformat(),
        "deadline_at": request.deadline.replace(tzinfo=None).isoformat(),
    }


async def _rows(pool: aiopg.Pool, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    async with pool.acquire() as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        await cur.execute(sql, params)
        return [dict(row) for row in await cur.fetchall()]


class PgGdprStore:
    def __init__(self, pool: aiopg.Pool) -> None:
        self.pool = pool

    async def record(self, requests: Sequence[GdprRequest]) -> list[str]:
        rows = await _rows(self.pool, _RECORD, (json.dumps([_request_row(r) for r in requests]),))
        return [row["id"] for row in rows]

    async def failed_attempt(self, request_id: str, error: str, final: bool) -> None:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(_FAILED, (error, final, request_id))

    async def finish(self, request_id: str, result: dict[str, Any]) -> bool:
        return bool(await _rows(self.pool, _FINISH, (json.dumps(result), request_id)))

    async def open_summary(self) -> OpenRequests:
        row = await fetch_one(self.pool, _OPEN)
        assert row is not None
        return OpenRequests(int(row["open"]), int(row["overdue"]), float(row["oldest"]))

    async def import_logs(self, merchant_id: str, import_ids: Sequence[str]) -> list[dict[str, Any]]:
        if not import_ids:
            return []
        rows = await _rows(self.pool, _IMPORT_LOGS, (merchant_id, list(import_ids)))
        return [
            row | {"created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"])} for row in rows
        ]

    async def audit_entries(self, merchant_id: str, customer_id: str) -> list[dict[str, Any]]:
        rows = await _rows(self.pool, _AUDIT, (merchant_id, customer_id))
        return [row | {"created_at": iso(row["created_at"])} for row in rows]

    async def save(self, export: SealedExport) -> None:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                _SAVE,
                (
                    export.export_id,
                    export.request_id,
                    export.merchant_id,
                    export.customer_id,
                    export.sealed_with,
                    export.key_wrapped,
                    export.sealed,
                ),
            )

    async def load(self, merchant_id: str, export_id: str) -> SealedExport | None:
        row = await fetch_one(self.pool, _LOAD, (merchant_id, export_id))
        if row is None:
            return None
        wrapped = bytes(row["key_wrapped"]) if row["key_wrapped"] is not None else None
        return SealedExport(
            row["id"],
            row["request_id"],
            row["merchant_id"],
            row["customer_id"],
            row["sealed_with"],
            row["sealed"],
            wrapped,
        )
