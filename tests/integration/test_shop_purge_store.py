"""The shop purge's PostgreSQL adapter (core_app/shop_purge_store.py) on the real database: keys
shredded, customers deleted in chunks, everything of the merchant gone, another merchant's rows and
segment counts untouched (migration 0019's delete trigger leaves out only the purged merchant)."""

from __future__ import annotations

import json
import uuid

import psycopg2.extras

from core_app import db
from core_app.settings import Settings
from core_app.shop_purge_store import PgShopData
from core_app.sink_sql import PROGRAM_SETTINGS
from tests.support.auth import create_api_credentials
from tests.support.db import pg
from tests.support.events import new_merchant

THRESHOLDS = {d: {"min": 1, "max": 10} for d in ("recency", "frequency", "monetary")}


def shop(settings: Settings, customers: int) -> str:
    merchant = new_merchant(settings)
    with pg(settings) as conn, conn.cursor() as cur:
        row = {"id": str(uuid.uuid4()), "merchant_id": merchant, "rfm_thresholds": THRESHOLDS}
        cur.execute(PROGRAM_SETTINGS.sql, (json.dumps([row | {"loyalty_config": {}, "version": 1}]),))
        ids = [str(uuid.uuid4()) for _ in range(customers)]
        score = json.dumps({"recency": 1, "frequency": 20, "monetary": 20})
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO customers (id, merchant_id, email, rfm_score) VALUES %s",
            [(cid, merchant, f"p-{cid[:12]}@example.com", score) for cid in ids],
        )
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO customer_data_keys (merchant_id, customer_id, wrapped_key) VALUES %s",
            [(merchant, cid, b"\x01" * 60) for cid in ids],
        )
        cur.execute(
            "INSERT INTO customer_import_logs (import_id, merchant_id, source, status)"
            " VALUES (%s, %s, 'custom', 'completed')",
            (str(uuid.uuid4()), merchant),
        )
    create_api_credentials(settings, merchant)
    return merchant


def left(settings: Settings, merchant: str) -> dict[str, int]:
    tables = (
        "customers",
        "customer_data_keys",
        "program_settings",
        "customer_import_logs",
        "api_keys",
        "customer_segment_counts",
    )
    with pg(settings) as conn, conn.cursor() as cur:
        found = {}
        for table in tables:
            cur.execute(f"SELECT count(*) FROM {table} WHERE merchant_id = %s", (merchant,))
            found[table] = cur.fetchone()[0]
    return found


async def test_the_purge_store_deletes_one_merchant_in_chunks_and_nothing_else(settings: Settings) -> None:
    purged, kept = shop(settings, 7), shop(settings, 3)
    before = left(settings, kept)
    pool = await db.create_pool(settings)
    try:
        store = PgShopData(pool, chunk=3)
        assert await store.shred_data_keys(purged) == 7
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM customer_data_keys WHERE merchant_id = %s AND wrapped_key IS NOT NULL",
                (purged,),
            )
            assert cur.fetchone()[0] == 0
        counts, customers = await store.delete_rows(purged)
        again = await store.delete_rows(purged)
    finally:
        pool.close()
        await pool.wait_closed()
    assert counts == {
        "customers": 7,
        "customer_data_keys": 7,
        "program_settings": 1,
        "import_logs": 1,
        "api_keys": 1,
        "gdpr_exports": 0,
        "parked_events": 0,
    }
    assert len(set(customers)) == 7 and again[0]["customers"] == 0 and again[1] == []
    assert set(left(settings, purged).values()) == {0}
    assert left(settings, kept) == before and before["customers"] == 3
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT sum(customers) FROM customer_segment_counts WHERE merchant_id = %s", (kept,))
        assert cur.fetchone()[0] == 3


def segment_total(settings: Settings, merchant: str) -> int:
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT sum(customers) FROM customer_segment_counts WHERE merchant_id = %s", (merchant,))
        return int(cur.fetchone()[0] or 0)


def test_a_merchant_being_purged_leaves_its_counts_to_the_purge_and_others_count(settings: Settings) -> None:
    """The delete trigger (0019, kept by 0022's grouped deltas) skips the merchant named by
    core.purging_merchant, whose counts the purge deletes at the end; any other merchant's deleted
    rows still count."""
    purged, other = shop(settings, 4), shop(settings, 4)
    with pg(settings) as conn, conn.cursor() as cur:
        # For the session, not the transaction: pg() commits each statement (the store sets it per
        # transaction, around its chunks).
        cur.execute("SELECT set_config('core.purging_merchant', %s, false)", (purged,))
        cur.execute(
            "DELETE FROM customers WHERE id IN (SELECT id FROM customers WHERE merchant_id = %s LIMIT 2)",
            (purged,),
        )
        cur.execute(
            "DELETE FROM customers WHERE id IN (SELECT id FROM customers WHERE merchant_id = %s LIMIT 1)",
            (other,),
        )
    assert segment_total(settings, purged) == 4
    assert segment_total(settings, other) == 3
