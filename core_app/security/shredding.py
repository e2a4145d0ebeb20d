"""Crypto-shredding: each customer's email is encrypted under that customer's own data key.

The data key (AES-256) lives only in PostgreSQL (`customer_data_keys`), wrapped by KEY_ENCRYPTION_KEY
and bound to (merchant_id, customer_id). Ciphertexts (`ce1:` + base64url) may then be copied anywhere
(table state, changelogs, events, backups). `shred` deletes the key and leaves a tombstone: every
copy becomes unreadable at once, and no new key is ever made for that customer.

Unwrapped keys are cached in-process for at most AUTH_CACHE_TTL seconds; `shred` evicts its own
worker's entry, other workers' entries expire within that time.
"""

from __future__ import annotations

import base64

import aiopg
from cachetools import TTLCache

from core_app.security.crypto import DecryptionFailed, new_key, open_sealed, seal

PREFIX = "ce1:"


class KeyShredded(Exception):
    """The customer's data key was deleted (GDPR erasure): the data is gone for good."""


def _key_aad(merchant_id: str, customer_id: str) -> bytes:
    return f"data_key:{merchant_id}:{customer_id}".encode()


def _field_aad(merchant_id: str, customer_id: str, field: str) -> bytes:
    return f"{field}:{merchant_id}:{customer_id}".encode()


def is_ciphertext(value: str) -> bool:
    return value.startswith(PREFIX)


def encrypt_field(key: bytes, merchant_id: str, customer_id: str, field: str, plaintext: str) -> str:
    sealed = seal(key, plaintext.encode(), _field_aad(merchant_id, customer_id, field))
    return PREFIX + base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def decrypt_field(key: bytes, merchant_id: str, customer_id: str, field: str, token: str) -> str:
    if not is_ciphertext(token):
        raise DecryptionFailed("not a ce1 ciphertext")
    body = token[len(PREFIX) :]
    try:
        sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError:
        raise DecryptionFailed("not base64") from None
    return open_sealed(key, sealed, _field_aad(merchant_id, customer_id, field)).decode()


class DataKeyStore:
    def __init__(self, pool: aiopg.Pool, kek: bytes, cache_ttl: float = 30.0) -> None:
        self.pool = pool
        self.kek = kek
        self._cache: TTLCache[tuple[str, str], bytes] = TTLCache(maxsize=100_000, ttl=max(cache_ttl, 0.001))

    async def key_for(self, merchant_id: str, customer_id: str, *, create: bool) -> bytes:
        cached = self._cache.get((merchant_id, customer_id))
        if cached is not None:
            return cached
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            if create:
                wrapped = seal(self.kek, new_key(), _key_aad(merchant_id, customer_id))
                # Concurrent creators agree: the first insert wins and both read it back.
                await cur.execute(
                    "INSERT INTO customer_data_keys (merchant_id, customer_id, wrapped_key)"
                    " VALUES (%s, %s, %s) ON CONFLICT (merchant_id, customer_id) DO NOTHING",
                    (merchant_id, customer_id, wrapped),
                )
            await cur.execute(
                "SELECT wrapped_key, shredded_at FROM customer_data_keys"
                " WHERE merchant_id = %s AND customer_id = %s",
                (merchant_id, customer_id),
            )
            row = await cur.fetchone()
        if row is None or row[0] is None:
            raise KeyShredded(f"no data key for customer {customer_id}")
        key = open_sealed(self.kek, bytes(row[0]), _key_aad(merchant_id, customer_id))
        self._cache[(merchant_id, customer_id)] = key
        return key

    async def encrypt_email(self, merchant_id: str, customer_id: str, email: str) -> str:
        key = await self.key_for(merchant_id, customer_id, create=True)
        return encrypt_field(key, merchant_id, customer_id, "email", email)

    async def decrypt_email(self, merchant_id: str, customer_id: str, token: str) -> str:
        """The plaintext, or KeyShredded once the customer was erased."""
        key = await self.key_for(merchant_id, customer_id, create=False)
        return decrypt_field(key, merchant_id, customer_id, "email", token)

    async def shred(self, merchant_id: str, customer_id: str) -> bool:
        """Delete the customer's data key for good (idempotent). True when a live key was deleted."""
        self._cache.pop((merchant_id, customer_id), None)
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "WITH old AS (SELECT wrapped_key IS NOT NULL AS live FROM customer_data_keys"
                "             WHERE merchant_id = %(m)s AND customer_id = %(c)s)"
                " INSERT INTO customer_data_keys (merchant_id, customer_id, wrapped_key, shredded_at)"
                " VALUES (%(m)s, %(c)s, NULL, now())"
                " ON CONFLICT (merchant_id, customer_id) DO UPDATE"
                " SET wrapped_key = NULL, shredded_at = COALESCE(customer_data_keys.shredded_at, now())"
                " RETURNING COALESCE((SELECT live FROM old), false)",
                {"m": merchant_id, "c": customer_id},
            )
            row = await cur.fetchone()
        self._cache.pop((merchant_id, customer_id), None)
        return bool(row and row[0])

    def forget_cached(self) -> None:
        self._cache.clear()
