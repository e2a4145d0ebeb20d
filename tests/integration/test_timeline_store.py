"""The timeline in PostgreSQL: imports insert their `imported` entries with the rows (once, even on a
re-run), the sink's statement stores entries but never for an erased customer, the erasure trigger
purges them, and retention bounds both the reads and the rows the purge leaves."""

from __future__ import annotations

import json
import uuid

import aiopg

from core_app.customer_import.store import insert_customers
from core_app.domain.timeline import imported_entry
from core_app.settings import Settings
from core_app.sink_sql import CUSTOMERS
from core_app.sink_timeline import INSERT_ENTRIES, RetentionPurge
from core_app.timeline_store import PgTimelineStore
from tests.support.db import pg
from tests.support.events import new_merchant

NOW = "2026-12-01T10:00:00.000Z"
NOW_MS = 1_796_119_200_000  # NOW in epoch ms


def versions(settings: Settings, merchant: str, customer: str) -> list[tuple[int, str]]:
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT version, kind FROM customer_timeline WHERE merchant_id = %s AND customer_id = %s"
            " ORDER BY version",
            (merchant, customer),
        )
        return [tuple(row) for row in cur.fetchall()]


def entry(version: int, kind: str = "points") -> dict[str, object]:
    return {"version": version, "kind": kind, "at": NOW_MS, "change": {"balance": version}, "source": {}}


async def test_imports_insert_their_entries_once_and_rows_without_one_get_none(
    settings: Settings, pool: aiopg.Pool
) -> None:
    merchant = new_merchant(settings)
    with_entry, without = str(uuid.uuid4()), str(uuid.uuid4())
    rows = [
        {
            "id": with_entry,
            "email": f"a-{with_entry[:8]}@example.com",
            "metadata": {},
            "entry": imported_entry("imp-1", "shopify", 2, NOW_MS),
        },
        {"id": without, "email": f"b-{without[:8]}@example.com", "metadata": {}},
    ]
    assert len(await insert_customers(pool, merchant, rows)) == 2
    assert await insert_customers(pool, merchant, rows) == {}  # a re-run inserts nothing, twice nothing
    assert versions(settings, merchant, with_entry) == [(0, "imported")]
    assert versions(settings, merchant, without) == []
    [served] = await PgTimelineStore(pool).entries(
        merchant, with_entry, before=None, limit=5, retention_days=365
    )
    assert served["source"] == {"import_id": "imp-1", "import_source": "shopify", "row": 2}
    assert served["occurred_at"] == NOW


async def test_the_sink_stores_entries_the_erasure_purges_them_and_none_come_back(settings: Settings) -> None:
    merchant = new_merchant(settings)
    customer = str(uuid.uuid4())
    row = {"customer_id": customer, "merchant_id": merchant, "rfm_score": {}, "metadata": {}, "version": 2}
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO customers (id, merchant_id, email) VALUES (%s, %s, 'x@example.com')",
            (customer, merchant),
        )
        cur.execute(CUSTOMERS.sql, (json.dumps([row]),))
        history = [{"merchant_id": merchant, "customer_id": customer, "timeline": [entry(1), entry(2)]}]
        cur.execute(INSERT_ENTRIES, (json.dumps(history),))
        cur.execute(INSERT_ENTRIES, (json.dumps(history),))  # a replayed record: nothing twice
    assert versions(settings, merchant, customer) == [(1, "points"), (2, "points")]
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            CUSTOMERS.sql, (json.dumps([row | {"version": 3, "redacted_at": "2026-12-01T10:00:00"}]),)
        )
    assert versions(settings, merchant, customer) == []  # trg_purge_timeline_on_erasure
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(INSERT_ENTRIES, (json.dumps(history),))  # the sink re-reading older records
    assert versions(settings, merchant, customer) == []


async def test_retention_bounds_reads_and_the_purge_deletes_only_old_entries(
    settings: Settings, pool: aiopg.Pool
) -> None:
    merchant = new_merchant(settings)
    customer = str(uuid.uuid4())
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO customers (id, merchant_id, email) VALUES (%s, %s, 'r@example.com')",
            (customer, merchant),
        )
        for version, age_days in [(1, 400), (2, 40), (3, 0)]:
            cur.execute(
                "INSERT INTO customer_timeline (merchant_id, customer_id, version, kind, occurred_at,"
                " recorded_at) VALUES (%s, %s, %s, 'points', now(), now() - make_interval(days => %s))",
                (merchant, customer, version, age_days),
            )
    store = PgTimelineStore(pool)
    served = await store.entries(merchant, customer, before=None, limit=10, retention_days=30)
    assert [e["version"] for e in served] == [3]
    served = await store.entries(merchant, customer, before=None, limit=10, retention_days=365)
    assert [e["version"] for e in served] == [3, 2]
    purge = RetentionPurge(days=365, interval=3600)
    assert await purge.maybe_run(lambda: pool) >= 1
    assert versions(settings, merchant, customer) == [(2, "points"), (3, "points")]
    assert await purge.maybe_run(lambda: pool) == 0  # not due again for an hour
