"""`core keys rotate-kek` and `core keys rotate-email-key` on a database of their own: afterwards
every customer is readable with the new keys only (the email in PostgreSQL, the data key that opens
the sealed copies outside it, the API key secrets), a shredded customer stays shredded, and a
rotation that cannot open a row changes nothing."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import uuid
from collections.abc import Iterator

import psycopg2
import pytest

from core_app import db
from core_app.migrate import migrate
from core_app.ops.rotation import run_cli
from core_app.security.api_keys import _aad as api_key_aad
from core_app.security.api_keys import new_api_key
from core_app.security.crypto import kek_from_setting, open_sealed
from core_app.security.shredding import DataKeyStore, KeyShredded
from core_app.settings import Settings
from tests.support.events import new_merchant

OLD_KEK, NEW_KEK = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
OLD_EMAIL_KEY, NEW_EMAIL_KEY = ("old-email-key-" + "o" * 32, "new-email-key-" + "n" * 32)
CUSTOMERS = 25


@pytest.fixture(scope="module")
def rotation_db(settings: Settings) -> Iterator[Settings]:
    name = f"{settings.core_db_name}_rotation"
    old = settings.model_copy(
        update={
            "core_db_name": name,
            "key_encryption_key": type(settings.key_encryption_key)(OLD_KEK),
            "email_encryption_key": type(settings.email_encryption_key)(OLD_EMAIL_KEY),
        }
    )
    migrate(old)
    yield old
    admin = psycopg2.connect(settings.model_copy(update={"core_db_name": "postgres"}).db_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def connect(settings: Settings) -> psycopg2.extensions.connection:
    return psycopg2.connect(settings.db_dsn, options=db.connection_options(settings))


async def run_keys(settings: Settings, action: str, **env: str) -> tuple[int, str]:
    full = os.environ | {
        "CORE_ENV": "test",
        "CORE_DB_NAME": settings.core_db_name,
        "KEY_ENCRYPTION_KEY": settings.key_encryption_key.get_secret_value(),
        "EMAIL_ENCRYPTION_KEY": settings.email_encryption_key.get_secret_value(),
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core_app", "keys", action, env=full,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode()


async def seed(settings: Settings) -> tuple[str, dict[str, str], dict[str, str], tuple[str, str]]:
    """Customers with emails in PostgreSQL and sealed copies under their data keys, one shredded."""
    merchant = new_merchant(settings)
    emails = {str(uuid.uuid4()): f"person{i}@example.com" for i in range(CUSTOMERS)}
    with connect(settings) as conn, conn.cursor() as cur:
        for customer_id, email in emails.items():
            cur.execute(
                "INSERT INTO customers (id, merchant_id, email) VALUES (%s, %s, %s)",
                (customer_id, merchant, email),
            )
        api_key = new_api_key(cur, kek_from_setting(OLD_KEK), merchant, ["admin:full"], "rotation test")
    pool = await db.create_pool(settings)
    try:
        store = DataKeyStore(pool, kek_from_setting(OLD_KEK))
        sealed = {c: await store.encrypt_email(merchant, c, e) for c, e in emails.items()}
        shredded = next(iter(emails))
        await store.shred(merchant, shredded)
    finally:
        pool.close()
        await pool.wait_closed()
    return merchant, emails, sealed, api_key


async def readable(settings: Settings, merchant: str, sealed: dict[str, str]) -> dict[str, str]:
    pool = await db.create_pool(settings)
    found = {}
    try:
        store = DataKeyStore(pool, kek_from_setting(settings.key_encryption_key.get_secret_value()))
        for customer_id, token in sealed.items():
            try:
                found[customer_id] = await store.decrypt_email(merchant, customer_id, token)
            except KeyShredded:
                found[customer_id] = "shredded"
    finally:
        pool.close()
        await pool.wait_closed()
    return found


def emails_in_postgres(settings: Settings, merchant: str) -> dict[str, str]:
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, core_decrypt_email(email) FROM customers WHERE merchant_id = %s", (merchant,))
        return {str(customer_id): email for customer_id, email in cur.fetchall()}


async def test_rotation_keeps_every_customer_readable(rotation_db: Settings) -> None:
    old = rotation_db
    merchant, emails, sealed, (key_id, secret) = await seed(old)
    shredded = next(iter(emails))
    before = await readable(old, merchant, sealed)
    assert before == emails | {shredded: "shredded"}

    # Refusals change nothing: the same key, and a current key that does not open the rows (in
    # process: the same function the CLI calls, without three more interpreter starts).
    assert run_cli(old, "rotate-kek", {"NEW_KEY_ENCRYPTION_KEY": OLD_KEK}) == 2
    assert run_cli(old, "rotate-kek", {}) == 2
    wrong_kek = old.model_copy(update={"key_encryption_key": type(old.key_encryption_key)(NEW_KEK)})
    assert run_cli(wrong_kek, "rotate-kek", {"NEW_KEY_ENCRYPTION_KEY": OLD_KEK}) == 1
    wrong_email = old.model_copy(update={"email_encryption_key": type(old.email_encryption_key)("w" * 40)})
    assert run_cli(wrong_email, "rotate-email-key", {"NEW_EMAIL_ENCRYPTION_KEY": NEW_EMAIL_KEY}) == 1
    assert await readable(old, merchant, sealed) == before
    assert emails_in_postgres(old, merchant) == emails

    code, out = await run_keys(old, "rotate-kek", NEW_KEY_ENCRYPTION_KEY=NEW_KEK)
    assert code == 0, out
    assert f"{CUSTOMERS - 1} data keys, 1 API keys" in out
    code, out = await run_keys(old, "rotate-email-key", NEW_EMAIL_ENCRYPTION_KEY=NEW_EMAIL_KEY)
    assert code == 0 and f"{CUSTOMERS} emails" in out, out

    new = old.model_copy(
        update={
            "key_encryption_key": type(old.key_encryption_key)(NEW_KEK),
            "email_encryption_key": type(old.email_encryption_key)(NEW_EMAIL_KEY),
        }
    )
    assert await readable(new, merchant, sealed) == before  # every sealed copy opens, shredded stays
    assert emails_in_postgres(new, merchant) == emails
    with pytest.raises(psycopg2.Error):
        emails_in_postgres(old, merchant)  # the old email key opens nothing any more
    with connect(new) as conn, conn.cursor() as cur:
        cur.execute("SELECT secret_wrapped FROM api_keys WHERE key_id = %s", (key_id,))
        (wrapped,) = cur.fetchone()
        cur.execute("SELECT action, details FROM audit_logs WHERE actor = 'cli:keys' ORDER BY created_at")
        audited = cur.fetchall()
    assert open_sealed(kek_from_setting(NEW_KEK), bytes(wrapped), api_key_aad(key_id)).decode() == secret
    assert [a for a, _ in audited] == ["key_encryption_key.rotated", "email_encryption_key.rotated"]
