"""The customer timeline's side of the sink: entries stored with the rows they explain, and the
retention purge (docs/decisions.md D170, D171).

A customers changelog record carries, under `timeline`, the entries of the changes its state holds
(core_app/domain/timeline.py). The sink keeps every record's entries when it coalesces a batch and
inserts them in the transaction that upserts the rows: an entry is stored exactly when its state is.
Entries of an erased customer are never inserted (a replayed record after the erasure), and the
erasure itself purges the rest (the `trg_purge_timeline_on_erasure` trigger).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import aiopg

log = logging.getLogger(__name__)

TIMELINE_FIELD = "timeline"

INSERT_ENTRIES = """
INSERT INTO customer_timeline (merchant_id, customer_id, version, kind, change, source, event_id,
                               occurred_at)
SELECT b.merchant_id, b.customer_id, e.version, e.kind, COALESCE(e.change, '{}'), COALESCE(e.source, '{}'),
       e.event_id, to_timestamp(e.at / 1000.0) AT TIME ZONE 'UTC'
  FROM jsonb_to_recordset(%s::jsonb) AS b(merchant_id uuid, customer_id uuid, timeline jsonb)
 CROSS JOIN LATERAL jsonb_to_recordset(b.timeline) AS e(
       version bigint, kind text, change jsonb, source jsonb, event_id text, at bigint)
 WHERE NOT EXISTS (SELECT 1 FROM customers c
                    WHERE c.merchant_id = b.merchant_id AND c.id = b.customer_id
                      AND c.redacted_at IS NOT NULL)
ON CONFLICT (merchant_id, customer_id, version) DO NOTHING
"""

PURGE_CHUNK = 10_000
_PURGE = """
WITH old AS (
    SELECT merchant_id, customer_id, version FROM customer_timeline
     WHERE recorded_at < CURRENT_TIMESTAMP - make_interval(days => %s) LIMIT %s
)
DELETE FROM customer_timeline t USING old
 WHERE t.merchant_id = old.merchant_id AND t.customer_id = old.customer_id AND t.version = old.version
"""
_PURGE_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('core:timeline-retention'))"


def entries_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that carry timeline entries, reduced to what the insert reads."""
    return [
        {"merchant_id": row["merchant_id"], "customer_id": row["customer_id"], TIMELINE_FIELD: entries}
        for row in rows
        if (entries := row.get(TIMELINE_FIELD))
    ]


def gather(
    history: dict[tuple[Any, ...], list[dict[str, Any]]], key: tuple[Any, ...], row: dict[str, Any]
) -> None:
    """Keep a coalesced record's entries: the newest state per key replaces the older ones, its
    entries do not replace theirs."""
    entries = row.get(TIMELINE_FIELD)
    if entries:
        history.setdefault(key, []).extend(entries)


class RetentionPurge:
    """Deletes entries older than TIMELINE_RETENTION_DAYS, at most once per `interval` seconds per
    sink, in chunks; one sink at a time (an advisory lock), the others skip."""

    def __init__(self, days: int, interval: float = 3600.0) -> None:
        self.days = days
        self.interval = interval
        self.next_run = 0.0

    async def maybe_run(self, pool_of: Callable[[], aiopg.Pool]) -> int:
        """Purge when due; `pool_of` is asked only then (a worker's pool opens after its sink starts)."""
        now = time.monotonic()
        if now < self.next_run:
            return 0
        try:
            pool = pool_of()
        except Exception:  # not open yet: try again at the next step
            return 0
        self.next_run = now + self.interval
        try:
            return await self.run(pool)
        except Exception as exc:  # retried at the next interval; never holds back the sink
            log.warning("timeline retention purge failed", extra={"error": str(exc)})
            return 0

    async def run(self, pool: aiopg.Pool) -> int:
        deleted = 0
        while True:
            async with pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute("BEGIN")
                try:
                    await cur.execute(_PURGE_LOCK)
                    row = await cur.fetchone()
                    if not (row and row[0]):
                        await cur.execute("COMMIT")
                        return deleted  # another sink is purging
                    await cur.execute(_PURGE, (self.days, PURGE_CHUNK))
                    count = cur.rowcount
                    await cur.execute("COMMIT")
                except BaseException:
                    if not conn.closed:
                        await cur.execute("ROLLBACK")
                    raise
            deleted += count
            if count < PURGE_CHUNK:
                if deleted:
                    log.info("timeline retention purge", extra={"deleted": deleted, "days": self.days})
                return deleted
