"""Batch upserts from table changelogs into PostgreSQL: idempotent and version-guarded.

Each statement takes the whole batch as one JSON array (`jsonb_to_recordset`), so a batch is one
round trip. `WHERE <table>.version < EXCLUDED.version` means a replayed or older state never moves a
row backwards: at-least-once delivery, exactly-once result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core_app.domain.events import is_canonical_uuid


@dataclass(frozen=True)
class SinkSpec:
    table: str  # the Faust table whose changelog is consumed
    sql: str
    row_key: tuple[str, ...]  # fields that identify a row, for coalescing a batch
    # A tombstone deletes the row its table key names (a purged merchant's, D163); the key's parts,
    # split on ":", are these fields, each a UUID.
    delete_sql: str
    cache_key_format: str | None = None  # the Redis entry a persisted row makes stale

    def key_of(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row.get(name) for name in self.row_key)

    def tombstone_row(self, key: bytes | None) -> dict[str, str] | None:
        """The row a tombstone's table key names (its `row_key` fields), None if it names none."""
        try:
            text = json.loads(key) if key is not None else None
        except ValueError:
            return None
        parts = text.split(":") if isinstance(text, str) else []
        if len(parts) != len(self.row_key) or not all(is_canonical_uuid(part) for part in parts):
            return None
        return dict(zip(self.row_key, parts, strict=True))

    def cache_key(self, row: dict[str, Any]) -> str | None:
        return self.cache_key_format.format(**row) if self.cache_key_format else None


# PostgreSQL keeps its own pgcrypto email (written by the create/update commands); the state's sealed
# email never goes there. A redaction sets it to 'redacted'. A row the sink inserts (no create came
# first: never in the product's flows) has no email to store, so it is inserted as 'redacted'.
CUSTOMERS = SinkSpec(
    table="customers",
    row_key=("merchant_id", "customer_id"),
    delete_sql="""
DELETE FROM customers c USING jsonb_to_recordset(%s::jsonb) AS r(merchant_id uuid, customer_id uuid)
 WHERE c.merchant_id = r.merchant_id AND c.id = r.customer_id
""",
    cache_key_format="customer:{merchant_id}:{customer_id}",
    sql="""
INSERT INTO customers AS c (id, merchant_id, email, email_hash, rfm_score, metadata, version,
                            applied_as_of, redacted_at, created_at)
SELECT r.customer_id, r.merchant_id, 'redacted', r.email_hash, COALESCE(r.rfm_score, '{}'),
       COALESCE(r.metadata, '{}'), r.version, COALESCE(r.applied_as_of, '{}'), r.redacted_at,
       COALESCE(r.created_at, CURRENT_TIMESTAMP)
  FROM jsonb_to_recordset(%s::jsonb) AS r(
       customer_id uuid, merchant_id uuid, email text, email_hash text, rfm_score jsonb,
       metadata jsonb, version bigint, applied_as_of jsonb, redacted_at timestamp,
       created_at timestamp)
ON CONFLICT (merchant_id, id) DO UPDATE
   SET email = CASE WHEN EXCLUDED.redacted_at IS NOT NULL THEN 'redacted' ELSE c.email END,
       email_hash = EXCLUDED.email_hash, rfm_score = EXCLUDED.rfm_score,
       metadata = EXCLUDED.metadata, version = EXCLUDED.version,
       applied_as_of = EXCLUDED.applied_as_of, redacted_at = EXCLUDED.redacted_at
 WHERE c.version < EXCLUDED.version
""",
)

PROGRAM_SETTINGS = SinkSpec(
    table="program_settings",
    row_key=("merchant_id",),
    delete_sql="""
DELETE FROM program_settings s USING jsonb_to_recordset(%s::jsonb) AS r(merchant_id uuid)
 WHERE s.merchant_id = r.merchant_id
""",
    cache_key_format="settings:{merchant_id}",
    sql="""
INSERT INTO program_settings AS s (id, merchant_id, rfm_thresholds, loyalty_config, version,
                                   created_at)
SELECT r.id, r.merchant_id, COALESCE(r.rfm_thresholds, '{}'), COALESCE(r.loyalty_config, '{}'),
       r.version, COALESCE(r.created_at, CURRENT_TIMESTAMP)
  FROM jsonb_to_recordset(%s::jsonb) AS r(
       id uuid, merchant_id uuid, rfm_thresholds jsonb, loyalty_config jsonb, version bigint,
       created_at timestamp)
ON CONFLICT (merchant_id) DO UPDATE
   SET rfm_thresholds = EXCLUDED.rfm_thresholds, loyalty_config = EXCLUDED.loyalty_config,
       version = EXCLUDED.version, updated_at = clock_timestamp()
 WHERE s.version < EXCLUDED.version
""",
)

IMPORT_LOGS = SinkSpec(
    table="import_logs",
    row_key=("import_id",),  # the table's key; import ids are unique across merchants
    delete_sql="""
DELETE FROM customer_import_logs l USING jsonb_to_recordset(%s::jsonb) AS r(import_id uuid)
 WHERE l.import_id = r.import_id
""",
    sql="""
INSERT INTO customer_import_logs AS l (import_id, merchant_id, source, status, file_url,
                                       record_count, error_count, error_log, failure_reason,
                                       version, created_at)
SELECT r.import_id, r.merchant_id, r.source, r.status, r.file_url, COALESCE(r.record_count, 0),
       COALESCE(r.error_count, 0), r.error_log, r.failure_reason, r.version,
       COALESCE(r.created_at, CURRENT_TIMESTAMP)
  FROM jsonb_to_recordset(%s::jsonb) AS r(
       import_id uuid, merchant_id uuid, source text, status text, file_url text,
       record_count integer, error_count integer, error_log jsonb, failure_reason text,
       version bigint, created_at timestamp)
ON CONFLICT (merchant_id, import_id) DO UPDATE
   SET status = EXCLUDED.status, record_count = EXCLUDED.record_count,
       error_count = EXCLUDED.error_count, error_log = EXCLUDED.error_log,
       failure_reason = EXCLUDED.failure_reason, version = EXCLUDED.version,
       updated_at = clock_timestamp()
 WHERE l.version < EXCLUDED.version
""",
)

SPECS = (CUSTOMERS, PROGRAM_SETTINGS, IMPORT_LOGS)
