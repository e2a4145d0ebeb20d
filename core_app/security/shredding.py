"""Crypto-shredding: each customer's email is encrypted under that customer's own data key.

The data key (AES-256) lives only in PostgreSQL (`customer_data_keys`), wrapped by KEY_ENCRYPTION_KEY
and bound to (merchant_id, customer_id). Ciphertexts (`ce1:` + base64url) may then be copied anywhere
(table state, changelogs, events, backups). `shred` deletes the key and leaves a tombstone: every
copy becomes unreadable at once, and no new key is ever made for that customer.

Unwrapped keys are cached in-process for at most AUTH_CACHE_TTL seconds. `shred` evicts its own
worker's entry and tells every other worker over the security broadcast (Redis pub/sub,
core_app/security/broadcast.py), which evict theirs within milliseconds; a worker whose subscription
broke empties its whole cache when it subscribes again, since it may have missed news (D184).
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import aiopg
from cachetools import TTLCache
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from core_app.security import metrics
from core_app.security.broadcast import SecurityBroadcast
from core_app.security.crypto import DecryptionFailed, new_key, open_sealed, seal

log = logging.getLogger(__name__)

PREFIX = "ce1:"
SHREDDED = "shred"  # the broadcast's kind


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
    def __init__(
        self,
        pool: aiopg.Pool,
        kek: bytes,
        cache_ttl: float = 30.0,
        broadcast: SecurityBroadcast | None = None,
    ) -> None:
        self.pool = pool
        self.kek = kek
        self._cache: TTLCache[tuple[str, str], bytes] = TTLCache(maxsize=100_000, ttl=max(cache_ttl, 0.001))
        self.broadcast = broadcast
        if broadcast is not None:
            broadcast.on(SHREDDED, self._shredded_elsewhere)
            broadcast.on_resubscribe(self.forget_cached)

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

    async def encrypt_emails(self, merchant_id: str, pairs: list[tuple[str, str]]) -> dict[str, str | None]:
        """Many customers' emails at once (an import batch): their keys created in one statement and
        read back in another. customer_id -> sealed email, None for a customer already erased."""
        missing = [customer_id for customer_id, _ in pairs if (merchant_id, customer_id) not in self._cache]
        if missing:
            wrapped = [seal(self.kek, new_key(), _key_aad(merchant_id, c)) for c in missing]
            async with self.pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute(
                    "INSERT INTO customer_data_keys (merchant_id, customer_id, wrapped_key)"
                    " SELECT %s, k.customer_id, k.wrapped_key FROM unnest(%s::uuid[], %s::bytea[])"
                    " AS k(customer_id, wrapped_key) ON CONFLICT (merchant_id, customer_id) DO NOTHING",
                    (merchant_id, missing, wrapped),
                )
                await cur.execute(
                    "SELECT customer_id::text, wrapped_key FROM customer_data_keys"
                    " WHERE merchant_id = %s AND customer_id = ANY(%s::uuid[])",
                    (merchant_id, missing),
                )
                rows = await cur.fetchall()
            for customer_id, wrapped_key in rows:
                if wrapped_key is not None:
                    key = open_sealed(self.kek, bytes(wrapped_key), _key_aad(merchant_id, customer_id))
                    self._cache[(merchant_id, customer_id)] = key
        sealed: dict[str, str | None] = {}
        for customer_id, email in pairs:
            key = self._cache.get((merchant_id, customer_id))
            sealed[customer_id] = (
                encrypt_field(key, merchant_id, customer_id, "email", email) if key is not None else None
            )
        return sealed

    async def decrypt_email(self, merchant_id: str, customer_id: str, token: str) -> str:
        """The plaintext, or KeyShredded once the customer was erased."""
        key = await self.key_for(merchant_id, customer_id, create=False)
        return decrypt_field(key, merchant_id, customer_id, "email", token)

    async def seal_field(self, merchant_id: str, customer_id: str, field: str, plaintext: str) -> str:
        """Any text about the customer (a GDPR export) under its data key: shredded with it."""
        key = await self.key_for(merchant_id, customer_id, create=True)
        return encrypt_field(key, merchant_id, customer_id, field, plaintext)

    async def open_field(self, merchant_id: str, customer_id: str, field: str, token: str) -> str:
        key = await self.key_for(merchant_id, customer_id, create=False)
        return decrypt_field(key, merchant_id, customer_id, field, token)

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
        await self._announce(merchant_id, customer_id)
        return bool(row and row[0])

    async def _announce(self, merchant_id: str, customer_id: str) -> None:
        """Tell the other workers to drop their copy; a few quick tries, then the cache TTL bounds it
        (a Redis outage long enough to fail them breaks the others' subscriptions too, and they
        empty their caches when they subscribe again)."""
        if self.broadcast is None:
            return
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type((RedisError, OSError)),
                stop=stop_after_attempt(4),
                wait=wait_exponential(multiplier=0.1, max=0.5),
                reraise=True,
            ):
                with attempt:
                    await self.broadcast.publish(SHREDDED, merchant_id=merchant_id, customer_id=customer_id)
        except (RedisError, OSError) as exc:
            metrics.broadcasts.labels(SHREDDED, "failed").inc()
            log.error(
                "shred not broadcast: other workers keep the key until their cache expires",
                extra={"merchant_id": merchant_id, "error": str(exc)},
            )

    def _shredded_elsewhere(self, news: dict[str, Any]) -> None:
        self._cache.pop((str(news["merchant_id"]), str(news["customer_id"])), None)

    def forget_cached(self) -> None:
        self._cache.clear()
