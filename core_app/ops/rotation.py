"""Key rotation for a stopped set (docs/runbook.md "Rotating keys"): `core keys rotate-kek` and
`core keys rotate-email-key`. Each runs in one transaction, so it either rewraps every row or none.

- KEY_ENCRYPTION_KEY wraps each customer's data key (customer_data_keys) and each API key secret
  (api_keys): every wrapped value is opened with the current KEK and sealed again with the new one,
  under the same associated data.
- EMAIL_ENCRYPTION_KEY encrypts customers.email (pgcrypto): re-encrypted in SQL. Both keys travel as
  connection settings (`-c core.email_key_new=...`), never in SQL text or the statement log.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extras

from core_app import db
from core_app.security.api_keys import _aad as api_key_aad
from core_app.security.crypto import DecryptionFailed, kek_from_setting, open_sealed, seal
from core_app.security.shredding import _key_aad as data_key_aad
from core_app.settings import Settings


class RotationRefused(ValueError):
    pass


@dataclass(frozen=True)
class Rotated:
    data_keys: int = 0
    api_keys: int = 0
    emails: int = 0


def _connect(settings: Settings, extra_options: str = "") -> Any:
    options = db.connection_options(settings) + extra_options
    return psycopg2.connect(settings.db_dsn, options=options)


def rotate_kek(settings: Settings, new_kek_b64: str) -> Rotated:
    old = kek_from_setting(settings.key_encryption_key.get_secret_value())
    try:
        new = kek_from_setting(new_kek_b64)
    except ValueError as exc:
        raise RotationRefused(f"NEW_KEY_ENCRYPTION_KEY: {exc}") from None
    if new == old:
        raise RotationRefused("NEW_KEY_ENCRYPTION_KEY equals KEY_ENCRYPTION_KEY")
    conn = _connect(settings)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT wrapped_key, merchant_id, customer_id FROM customer_data_keys"
                " WHERE wrapped_key IS NOT NULL FOR UPDATE"
            )
            data_keys = _rewrap(
                cur,
                cur.fetchall(),
                lambda m, c: data_key_aad(str(m), str(c)),
                "UPDATE customer_data_keys SET wrapped_key = %s WHERE merchant_id = %s AND customer_id = %s",
                old,
                new,
            )
            cur.execute("SELECT secret_wrapped, key_id FROM api_keys FOR UPDATE")
            api_keys = _rewrap(
                cur,
                cur.fetchall(),
                api_key_aad,
                "UPDATE api_keys SET secret_wrapped = %s WHERE key_id = %s",
                old,
                new,
            )
            _audit(cur, "key_encryption_key.rotated", {"data_keys": data_keys, "api_keys": api_keys})
    finally:
        conn.close()
    return Rotated(data_keys=data_keys, api_keys=api_keys)


def _rewrap(
    cur: Any, rows: list[tuple[Any, ...]], aad_of: Callable[..., bytes], update: str, old: bytes, new: bytes
) -> int:
    """Open each (wrapped, *row id) with `old`, seal it with `new` under the same associated data."""
    for wrapped, *ids in rows:
        aad = aad_of(*ids)
        cur.execute(update, (seal(new, open_sealed(old, bytes(wrapped), aad), aad), *ids))
    return len(rows)


def rotate_email_key(settings: Settings, new_key: str) -> Rotated:
    if len(new_key) < 32:
        raise RotationRefused("NEW_EMAIL_ENCRYPTION_KEY: at least 32 characters")
    if new_key == settings.email_encryption_key.get_secret_value():
        raise RotationRefused("NEW_EMAIL_ENCRYPTION_KEY equals EMAIL_ENCRYPTION_KEY")
    conn = _connect(settings, f" -c core.email_key_new={db._escape_option(new_key)}")
    try:
        with conn, conn.cursor() as cur:
            # core_decrypt_email reads core.email_key (the current key); a row it cannot open aborts all.
            cur.execute(
                "UPDATE customers SET email = 'aes256:' || translate(encode(pgp_sym_encrypt("
                "    core_decrypt_email(email), current_setting('core.email_key_new'),"
                "    'cipher-algo=aes256, s2k-mode=1'), 'base64'), E'\\n', '')"
                " WHERE email LIKE 'aes256:%%'"
            )
            emails = cur.rowcount
            _audit(cur, "email_encryption_key.rotated", {"emails": emails})
    finally:
        conn.close()
    return Rotated(emails=emails)


def _audit(cur: Any, action: str, details: dict[str, int]) -> None:
    cur.execute(
        "INSERT INTO audit_logs (merchant_id, actor, action, entity_type, details)"
        " VALUES (NULL, 'cli:keys', %s, 'key', %s::jsonb)",
        (action, psycopg2.extras.Json(details)),
    )


NEW_KEY_VARIABLES = {"rotate-kek": "NEW_KEY_ENCRYPTION_KEY", "rotate-email-key": "NEW_EMAIL_ENCRYPTION_KEY"}


def run_cli(settings: Settings, action: str, environ: dict[str, str]) -> int:
    """`core keys rotate-kek|rotate-email-key`: the new key comes from the environment
    (NEW_KEY_ENCRYPTION_KEY / NEW_EMAIL_ENCRYPTION_KEY), never argv, which `ps` shows."""
    variable = NEW_KEY_VARIABLES[action]
    new_key = environ.get(variable, "")
    if not new_key:
        print(f"core: {variable} is not set", file=sys.stderr)
        return 2
    try:
        rotate = rotate_kek if action == "rotate-kek" else rotate_email_key
        done = rotate(settings, new_key)
    except RotationRefused as exc:
        print(f"core: {exc}", file=sys.stderr)
        return 2
    except DecryptionFailed:
        print("core: a wrapped key does not open with KEY_ENCRYPTION_KEY; nothing changed", file=sys.stderr)
        return 1
    except psycopg2.Error as exc:
        print(f"core: rotation failed, nothing changed: {exc.pgerror or exc}".rstrip(), file=sys.stderr)
        return 1
    print(f"rotated: {done.data_keys} data keys, {done.api_keys} API keys, {done.emails} emails")
    return 0
