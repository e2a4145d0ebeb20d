"""Per-request admission in one Redis round trip: IP allow-list, replay check, rate limit.

One Lua script (atomic, so two workers sharing Redis share one count):
1. `ip_whitelist:{merchant_id}` (a set, TTL 7 d): when it has members, the client address must be one.
2. the replay key of a signed request: a signature seen within the signature window is refused.
3. `rate_limit:{merchant_id}:{endpoint}` (a sorted set of admission times, TTL 60 s): a sliding
   one-second window, at most RATE_LIMIT_PER_SECOND admissions in any second. Refused requests are
   not counted. The clock is Redis's (`TIME`), so workers with skewed clocks agree.
Only when all pass is the request counted and its signature remembered.

Redis down: SECURITY_REDIS_FAIL_MODE=closed (default) answers 503, because the allow-list and replay
protection cannot be checked; `open` lets requests through unchecked. Both are counted in
`core_security_redis_unavailable_total`.
"""

from __future__ import annotations

import logging
import math
import os

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core_app.security import metrics
from core_app.security.errors import Forbidden, RateLimited, SecurityUnavailable, Unauthenticated

log = logging.getLogger(__name__)

RATE_LIMIT_TTL = 60
WINDOW_US = 1_000_000
ALLOWLIST_TTL = 7 * 24 * 3600

ADMIT = """
if redis.call('SCARD', KEYS[1]) > 0 then
  if ARGV[1] == '' or redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
    return {1, 0}
  end
end
local replay_ttl = tonumber(ARGV[6])
if replay_ttl > 0 and redis.call('EXISTS', KEYS[3]) == 1 then
  return {2, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {3, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[2], now, ARGV[5])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
if replay_ttl > 0 then
  redis.call('SET', KEYS[3], '1', 'EX', replay_ttl)
end
return {0, 0}
"""

ALLOWED = """
if redis.call('SCARD', KEYS[1]) > 0 and (ARGV[1] == '' or redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0) then
  return 0
end
return 1
"""


def allowlist_key(merchant_id: str) -> str:
    return f"ip_whitelist:{merchant_id}"


def rate_key(merchant_key: str, endpoint: str) -> str:
    return f"rate_limit:{merchant_key}:{endpoint}"


class Gate:
    def __init__(
        self, redis: Redis, *, prefix: str = "", limit: int = 100, fail_mode: str = "closed"
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limit = limit
        self.fail_open = fail_mode == "open"
        self._admit = redis.register_script(ADMIT)
        self._allowed = redis.register_script(ALLOWED)

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def admit(
        self,
        merchant_key: str,
        endpoint: str,
        client_ip: str | None,
        *,
        replay_id: str | None = None,
        replay_ttl: int = 0,
    ) -> None:
        """Raise unless the request may proceed; count it when it does."""
        keys = [
            self.key(allowlist_key(merchant_key)),
            self.key(rate_key(merchant_key, endpoint)),
            self.key(f"replay:{replay_id}" if replay_id else "replay:-"),
        ]
        args = [
            client_ip or "",
            self.limit,
            WINDOW_US,
            RATE_LIMIT_TTL,
            os.urandom(8).hex(),
            replay_ttl if replay_id else 0,
        ]
        try:
            verdict, value = await self._admit(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self._unavailable("admission", exc)
            return
        if verdict == 1:
            raise Forbidden("client address is not on the merchant's IP allow-list", reason="ip")
        if verdict == 2:
            raise Unauthenticated("signature already used (replay)")
        if verdict == 3:
            raise RateLimited(max(1, math.ceil(int(value) / 1_000_000)))

    async def ip_allowed(self, merchant_id: str, client_ip: str | None) -> None:
        try:
            allowed = await self._allowed(keys=[self.key(allowlist_key(merchant_id))], args=[client_ip or ""])
        except (RedisError, OSError) as exc:
            self._unavailable("ip_allowlist", exc)
            return
        if not allowed:
            raise Forbidden("client address is not on the merchant's IP allow-list", reason="ip")

    def _unavailable(self, check: str, exc: Exception) -> None:
        outcome = "fail_open" if self.fail_open else "fail_closed"
        metrics.redis_unavailable.labels(check, outcome).inc()
        log.warning(
            "security check without redis", extra={"check": check, "outcome": outcome, "error": str(exc)}
        )
        if not self.fail_open:
            raise SecurityUnavailable("security checks are unavailable; retry shortly")
