"""Whether a merchant has the app installed, for `guard()`: an uninstalled merchant's data stays
until `shop/redact`, but no use case serves it (404), as if it were gone.

Answers are cached per worker for AUTH_CACHE_TTL seconds, so `guard()` costs a dict lookup on the
hot path and one PostgreSQL query per merchant per TTL; an uninstall or reinstall is seen by every
worker within that time. A merchant id with no row is reported installed: the use cases answer an
unknown merchant their own way. While PostgreSQL cannot answer (a restart, a failover), the last
answer read is used past its TTL, so reads the tables serve go on (an install status cannot change
without PostgreSQL); a merchant never looked up raises, which the transports answer 503 (D209).
"""

from __future__ import annotations

import logging

import aiopg
from cachetools import LRUCache, TTLCache

from core_app.retry import TRANSIENT_ERRORS

log = logging.getLogger(__name__)


class MerchantStatus:
    """Also remembers each merchant's shop domain, which log lines carry (core_app/log_context.py)."""

    def __init__(self, pool: aiopg.Pool, ttl: float, size: int = 50_000) -> None:
        self.pool = pool
        self.cache: TTLCache[str, tuple[bool, str | None]] = (
            TTLCache(maxsize=size, ttl=ttl) if ttl > 0 else TTLCache(1, 1e-9)
        )
        self.last_read: LRUCache[str, tuple[bool, str | None]] = LRUCache(maxsize=size)  # past the TTL

    async def installed(self, merchant_id: str) -> bool:
        known = self.cache.get(merchant_id)
        if known is not None:
            return known[0]
        try:
            async with self.pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute("SELECT status, shop_domain FROM merchants WHERE id = %s", (merchant_id,))
                row = await cur.fetchone()
        except TRANSIENT_ERRORS as exc:
            last = self.last_read.get(merchant_id)
            if last is None:
                raise
            log.info("merchant status from its last read: PostgreSQL unavailable", extra={"error": repr(exc)})
            return last[0]
        installed = row is None or row[0] == "installed"
        self.cache[merchant_id] = self.last_read[merchant_id] = (installed, row[1] if row else None)
        return installed

    def shop_domain(self, merchant_id: str) -> str | None:
        """The merchant's shop, if `installed()` looked it up lately (never a query of its own)."""
        known = self.cache.get(merchant_id)
        return known[1] if known is not None else None

    def forget(self, merchant_id: str) -> None:
        self.cache.pop(merchant_id, None)
        self.last_read.pop(merchant_id, None)
