"""The schema against the real PostgreSQL: idempotent migrations, encryption, sanitising, triggers."""

import base64
import json
import os
import subprocess
import sys
import time
import uuid

import psycopg2
import pytest

from core_app.domain.email import email_hash
from core_app.domain.pii import PII_KEYS
from core_app.migrate import migrate, pending_migrations
from core_app.settings import Settings
from tests.support.db import pg
from tests.support.events import new_merchant

PLAN_INDEXES = {
    "idx_customers_merchant_id",
    "idx_customers_rfm_score",
    "idx_program_settings_merchant_id",
    "idx_customer_import_logs_merchant_id_status",
    "idx_customers_metadata",
}


@pytest.fixture
def merchant(settings: Settings) -> str:
    return new_merchant(settings)


def insert_customer(settings: Settings, merchant_id: str, email: str, metadata: str = "{}") -> str:
    customer_id = str(uuid.uuid4())
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO customers (id, merchant_id, email, metadata) VALUES (%s, %s, %s, %s)",
            (customer_id, merchant_id, email, metadata),
        )
    return customer_id


def test_migrate_twice_changes_nothing(settings: Settings) -> None:
    assert pending_migrations(settings) == []
    assert migrate(settings) == []
    env = {**os.environ, "CORE_DB_NAME": settings.core_db_name, "LOG_JSON": "false"}
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "core_app", "migrate"], env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        assert "applied 0 migration(s)" in result.stdout


def test_email_holds_no_plaintext(settings: Settings, merchant: str) -> None:
    email = "Known.Person@Example.com"
    customer_id = insert_customer(settings, merchant, email)
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT c::text, email, email_hash FROM customers c WHERE id = %s", (customer_id,))
        row_text, stored, stored_hash = cur.fetchone()
        cur.execute("SELECT core_decrypt_email(email) FROM customers WHERE id = %s", (customer_id,))
        decrypted = cur.fetchone()[0]
    for needle in (email, email.lower(), "known.person", "example.com"):
        assert needle not in row_text.lower()
    assert stored.startswith("aes256:")
    packet = base64.b64decode(stored.removeprefix("aes256:"))
    assert packet[2:5] == bytes([4, 9, 1])  # OpenPGP v4 session key, AES-256, salted S2K (D57)
    assert decrypted == email.lower()
    assert stored_hash == email_hash(email, settings.email_hash_key.get_secret_value())


def test_same_email_twice_for_one_merchant_is_refused(settings: Settings, merchant: str) -> None:
    insert_customer(settings, merchant, "dup@example.com")
    with pytest.raises(psycopg2.errors.UniqueViolation):
        insert_customer(settings, merchant, " DUP@example.com")


def test_write_without_keys_fails_closed(settings: Settings, merchant: str) -> None:
    with pg(settings, with_keys=False) as conn, conn.cursor() as cur:
        with pytest.raises(psycopg2.errors.InvalidAuthorizationSpecification):
            cur.execute(
                "INSERT INTO customers (id, merchant_id, email) VALUES (%s, %s, %s)",
                (str(uuid.uuid4()), merchant, "nokey@example.com"),
            )


def test_garbage_email_is_refused(settings: Settings, merchant: str) -> None:
    with pytest.raises(psycopg2.errors.InvalidParameterValue):
        insert_customer(settings, merchant, "plain text without an at sign")


def test_metadata_is_sanitised_on_insert_and_update(settings: Settings, merchant: str) -> None:
    customer_id = insert_customer(
        settings,
        merchant,
        "meta@example.com",
        '{"first_name": "John", "phone": "+1 555", "tier": "gold", "nested": {"Phone": 1, "k": 2}}',
    )
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT metadata FROM customers WHERE id = %s", (customer_id,))
        assert cur.fetchone()[0] == {"tier": "gold", "nested": {"k": 2}}
        cur.execute(
            "UPDATE customers SET metadata = %s WHERE id = %s RETURNING metadata",
            ('{"phone": "1", "first_name": "x", "points": 5}', customer_id),
        )
        assert cur.fetchone()[0] == {"points": 5}


def test_sanitiser_fast_path_changes_nothing_it_should_not(settings: Settings) -> None:
    """D240: documents without a PII key come back as they are; any PII key at any depth is still
    stripped, whatever its case, inside arrays, and next to strings that only look like keys."""
    clean = {"imports": {"shopify": {"tags": ["a", "b"], "note": 'say "email": no', "n": 1.5}}, "e": []}
    dirty = {"a": [{"Email": "x", "k": 1}], "b": '"phone": 1', "c": {"ZIP": 1, "d": {"dob": 2}}}
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT core_strip_pii(%s::jsonb), core_strip_pii(%s::jsonb)",
            (json.dumps(clean), json.dumps(dirty)),
        )
        assert cur.fetchone() == (clean, {"a": [{"k": 1}], "b": '"phone": 1', "c": {"d": {}}})


def test_pii_key_lists_agree(settings: Settings) -> None:
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT core_pii_keys()")
        assert set(cur.fetchone()[0]) == PII_KEYS


def test_updated_at_moves_on_update(settings: Settings, merchant: str) -> None:
    customer_id = insert_customer(settings, merchant, "time@example.com")
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT created_at, updated_at FROM customers WHERE id = %s", (customer_id,))
        created_at, first = cur.fetchone()
        time.sleep(0.01)
        cur.execute(
            "UPDATE customers SET rfm_score = '{\"recency\": 1}' WHERE id = %s RETURNING updated_at",
            (customer_id,),
        )
        second = cur.fetchone()[0]
    assert created_at is not None
    assert second > first


def test_plan_indexes_exist_by_name(settings: Settings) -> None:
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
        found = dict(cur.fetchall())
    assert PLAN_INDEXES <= set(found)
    assert "USING gin (rfm_score)" in found["idx_customers_rfm_score"]
    assert "USING gin (metadata)" in found["idx_customers_metadata"]
    assert "(merchant_id, status)" in found["idx_customer_import_logs_merchant_id_status"]


def test_customers_import_logs_and_timeline_are_hash_partitioned(settings: Settings) -> None:
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT c.relname, p.partstrat FROM pg_partitioned_table p
                 JOIN pg_class c ON c.oid = p.partrelid"""
        )
        partitioned = dict(cur.fetchall())
        cur.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'customers'::regclass")
        partitions = cur.fetchone()[0]
    assert partitioned == {"customers": "h", "customer_import_logs": "h", "customer_timeline": "h"}
    assert partitions == 8


def test_plan_checks_hold(settings: Settings, merchant: str) -> None:
    with pg(settings) as conn, conn.cursor() as cur:
        with pytest.raises(psycopg2.errors.CheckViolation):
            cur.execute(
                "INSERT INTO customer_import_logs (import_id, merchant_id, source, status)"
                " VALUES (gen_random_uuid(), %s, 'csv', 'pending')",
                (merchant,),
            )
        with pytest.raises(psycopg2.errors.CheckViolation):
            cur.execute(
                "INSERT INTO customer_import_logs (import_id, merchant_id, source, record_count)"
                " VALUES (gen_random_uuid(), %s, 'shopify', -1)",
                (merchant,),
            )
        with pytest.raises(psycopg2.errors.ForeignKeyViolation):
            cur.execute("INSERT INTO program_settings (merchant_id) VALUES (%s)", (str(uuid.uuid4()),))
        cur.execute(
            "INSERT INTO customer_import_logs (import_id, merchant_id, source)"
            " VALUES (gen_random_uuid(), %s, 'smile_io') RETURNING status, record_count, created_at",
            (merchant,),
        )
        status, count, created_at = cur.fetchone()
    assert (status, count) == ("pending", 0)
    assert created_at is not None
