"""The worker-made email ciphertext (core_app/email_cipher.py, D253) against PostgreSQL's own."""

import uuid
from collections.abc import Callable

import pytest

from core_app.domain.email import email_hash, normalize_email
from core_app.email_cipher import encrypt_email
from core_app.settings import Settings
from tests.support.db import pg
from tests.support.events import new_merchant

EMAILS = ["known.person@example.com", "a@b.co", "x" * 200 + "@example.com"]


Seal = Callable[[str], tuple[str, str]]


@pytest.fixture
def cipher(settings: Settings) -> Seal:
    """(ciphertext, email_hash) as an import makes them (core_app/customer_import/writer.py), under
    the keys every PostgreSQL connection carries (core_app/db.connection_options)."""
    key = settings.email_encryption_key.get_secret_value()
    hash_key = settings.email_hash_key.get_secret_value()
    return lambda email: (encrypt_email(normalize_email(email), key), email_hash(email, hash_key))


@pytest.mark.parametrize("email", EMAILS)
def test_python_ciphertext_opens_in_postgres_with_the_trigger_s_hash(
    settings: Settings, cipher: Seal, email: str
) -> None:
    merchant = new_merchant(settings)
    ours, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    ciphertext, digest = cipher(email)
    assert ciphertext.startswith("aes256:") and email not in ciphertext
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO customers (id, merchant_id, email, email_hash) VALUES (%s, %s, %s, %s)",
            (ours, merchant, ciphertext, digest),
        )
        # The same address through the trigger, in another merchant (the hash is per address).
        other = new_merchant(settings)
        cur.execute(
            "INSERT INTO customers (id, merchant_id, email) VALUES (%s, %s, %s)", (theirs, other, email)
        )
        cur.execute(
            "SELECT id::text, email, email_hash, core_decrypt_email(email) FROM customers"
            " WHERE id = ANY(%s::uuid[])",
            ([ours, theirs],),
        )
        rows = {row[0]: row[1:] for row in cur.fetchall()}
    stored, stored_hash, opened = rows[ours]
    assert stored == ciphertext  # passed through: the row never held the address
    assert opened == email and stored_hash == digest
    assert rows[theirs][1] == digest and rows[theirs][2] == email


def test_each_message_has_its_own_salt(cipher: Seal) -> None:
    first, second = cipher("same@example.com")[0], cipher("same@example.com")[0]
    assert first != second


def test_pgcrypto_reads_the_parameters_the_trigger_uses(settings: Settings, cipher: Seal) -> None:
    ciphertext, _ = cipher("params@example.com")
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT pgp_sym_decrypt(decode(substr(%s, 8), 'base64'), current_setting('core.email_key'),"
            " 'expect-cipher-algo=aes256, expect-s2k-mode=1, expect-s2k-digest-algo=sha1,"
            " expect-disable-mdc=0, expect-sess-key=0, expect-compress-algo=0')",
            (ciphertext,),
        )
        assert cur.fetchone()[0] == "params@example.com"
