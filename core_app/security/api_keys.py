"""API keys for signed REST requests, kept in PostgreSQL (`api_keys`, migration 0002).

A key is a public id (`lnk_` + 24 hex, sent as X-Api-Key) and a secret (`lns_...`, shown once at
creation, never sent on a request: it keys the HMAC). The row holds the secret AES-256-GCM wrapped
by KEY_ENCRYPTION_KEY, bound to the key id. Look-ups are cached in-process for AUTH_CACHE_TTL
seconds, so a revocation takes effect on every worker within that time.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import aiopg
from cachetools import TTLCache

from core_app.security.crypto import open_sealed, seal
from core_app.security.principal import Principal, normalise_merchant, normalise_permissions

KEY_ID_PREFIX = "lnk_"
SECRET_PREFIX = "lns_"
PRINCIPALS_PER_KEY = 256  # addresses remembered per key (then it starts over)
_KEY_ID = re.compile(re.escape(KEY_ID_PREFIX) + "[0-9a-f]{24}")


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    merchant_id: str
    permissions: frozenset[str]
    secret: str
    expires_at: float | None  # unix seconds

    @cached_property  # one per key (frozen): not rebuilt on every signed request
    def principal(self) -> Principal:
        return Principal(
            subject=f"api_key:{self.key_id}",
            merchant_id=self.merchant_id,
            permissions=self.permissions,
            auth_method="api_key",
        )

    @cached_property
    def _principals_by_ip(self) -> dict[str | None, Principal]:
        return {}

    def principal_at(self, client_ip: str | None) -> Principal:
        """The key's principal calling from `client_ip` (frozen, so one per address is shared)."""
        by_ip = self._principals_by_ip
        principal = by_ip.get(client_ip)
        if principal is None:
            if len(by_ip) >= PRINCIPALS_PER_KEY:
                by_ip.clear()
            principal = by_ip[client_ip] = self.principal.with_ip(client_ip)
        return principal


def _aad(key_id: str) -> bytes:
    return f"api_key:{key_id}".encode()


def valid_key_id(value: str) -> bool:
    return _KEY_ID.fullmatch(value) is not None


def new_api_key(
    cursor: Any,
    kek: bytes,
    merchant_id: str,
    permissions: Iterable[str],
    description: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, str]:
    """Insert a key through a psycopg2 cursor; returns (key_id, secret). The secret is not kept."""
    merchant = normalise_merchant(merchant_id)
    perms = sorted(normalise_permissions(permissions))
    if merchant is None or not perms:
        raise ValueError("a key needs a merchant UUID and at least one known permission")
    key_id = KEY_ID_PREFIX + secrets.token_hex(12)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    cursor.execute(
        "INSERT INTO api_keys (key_id, merchant_id, permissions, secret_wrapped, description, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (key_id, merchant, perms, seal(kek, secret.encode(), _aad(key_id)), description, expires_at),
    )
    return key_id, secret


def revoke_api_key(cursor: Any, key_id: str) -> bool:
    cursor.execute(
        "UPDATE api_keys SET revoked_at = now()"
        " WHERE key_id = %s AND revoked_at IS NULL RETURNING merchant_id",
        (key_id,),
    )
    return cursor.fetchone() is not None


class ApiKeyStore:
    def __init__(self, pool: aiopg.Pool, kek: bytes, ttl: float = 30.0) -> None:
        self.pool = pool
        self.kek = kek
        self._cache: TTLCache[str, ApiKey | None] = TTLCache(maxsize=10_000, ttl=max(ttl, 0.001))

    async def lookup(self, key_id: str) -> ApiKey | None:
        """The active key, or None when unknown, revoked or expired."""
        if not valid_key_id(key_id):
            return None
        if key_id in self._cache:
            found = self._cache[key_id]
        else:
            found = await self._load(key_id)
            self._cache[key_id] = found
        if found is not None and found.expires_at is not None and found.expires_at <= time.time():
            return None
        return found

    async def _load(self, key_id: str) -> ApiKey | None:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT merchant_id, permissions, secret_wrapped, expires_at FROM api_keys"
                " WHERE key_id = %s AND revoked_at IS NULL",
                (key_id,),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        merchant_id, permissions, wrapped, expires_at = row
        secret = open_sealed(self.kek, bytes(wrapped), _aad(key_id)).decode()
        # TIMESTAMP without time zone, written and read in UTC (connections set timezone=UTC).
        expires = expires_at.replace(tzinfo=UTC).timestamp() if expires_at is not None else None
        return ApiKey(key_id, str(merchant_id), normalise_permissions(permissions), secret, expires)

    def forget(self, key_id: str) -> None:
        self._cache.pop(key_id, None)
