"""Whether a merchant has the app installed, for `guard()`: an uninstalled merchant's data stays
until `shop/redact`, but no use case serves it (404), as if it were gone.

Answers are cached per worker for AUTH_CACHE_TTL seconds, so `guard()` costs a dict lookup on the
hot path and one PostgreSQL query per merchant per TTL; an uninstall or reinstall is seen by every
worker within that time. A merchant id with no row is reported installed: the use cases answer an
unknown merchant their own way.
"""

from __future__ import annotations

import aiopg
from cachetools import TTLCache


class MerchantStatus:
    """Also remembers each merchant's shop domain, which log lines carry (core_app/log_context.py)."""

    def __init__(self, pool: aiopg.Pool, ttl: float, size: int = 50_000) -> None:
        self.pool = pool
        self.cache: TTLCache[str, tuple[bool, str | None]] = (
            TTLCache(maxsize=size, ttl=ttl) if ttl > 0 else TTLCache(1, 1e-9)
        )

    async def installed(self, merchant_id: str) -> bool:
        known = self.cache.get(merchant_id)
        if known is not None:
            return known[0]
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT status, shop_domain FROM merchants WHERE id = %s", (merchant_id,))
            row = await cur.fetchone()
        installed = row is None or row[0] == "installed"
        self.cache[merchant_id] = (installed, row[1] if row else None)
        return installed

    def shop_domain(self, merchant_id: str) -> str | None:
        """The merchant's shop, if `installed()` looked it up lately (never a query of its own)."""
        known = self.cache.get(merchant_id)
        return known[1] if known is not None else None

    def forget(self, merchant_id: str) -> None:
        self.cache.pop(merchant_id, None)
