"""A pre-auth limit on failed authentications per client address, against credential stuffing (D183).

Each 401 from an authentication (API key signature, JWT, WebSocket connection-init, gRPC bearer)
counts against the client address in Redis: `auth_failures:{<ip>}`, one key, a fixed window of
AUTH_FAILURE_WINDOW seconds from the first failure. At AUTH_FAILURE_LIMIT failures the address is
blocked until the window ends: every worker answers it 429 (gRPC RESOURCE_EXHAUSTED) *before* looking
at its credentials, so a correct guess is refused like a wrong one and the attacker learns nothing.

The check costs a dict lookup: each worker keeps the blocked addresses in memory. The worker that
counts the failure reaching the limit tells the others over the security broadcast
(core_app/security/broadcast.py); a worker that missed it (started later) blocks the address at the
next failure it sees, since the count in Redis is already over the limit. Successful requests never
touch Redis here. Redis unreachable: failures are not counted (logged and counted in
`core_security_redis_unavailable_total{check="auth_failures"}`); the credentials are still checked.
Worker-to-worker routes are not limited: peers sit behind the NetworkPolicy, and a peer holding an
old INTERNAL_TOKEN during a rotation must not be locked out.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from core_app.security import metrics
from core_app.security.broadcast import SecurityBroadcast
from core_app.security.errors import RateLimited

log = logging.getLogger(__name__)

BLOCKED = "block"  # the broadcast's kind

# One key (Cluster-safe): the count, and the seconds left of its window.
RECORD = """
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return {count, redis.call('TTL', KEYS[1])}
"""


class TooManyAuthFailures(RateLimited):
    """The client address failed authentication too often; refused before its credentials are read."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.reason = f"too many failed authentications from this address; retry after {retry_after} s"
        self.details = {"reason": "auth_failures"}


def failures_key(prefix: str, client_ip: str) -> str:
    return f"{prefix}auth_failures:{{{client_ip}}}"


class AuthFailureLimiter:
    def __init__(
        self,
        redis: Any,
        *,
        prefix: str = "",
        limit: int = 30,
        window: int = 300,
        broadcast: SecurityBroadcast | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prefix = prefix
        self.limit = limit
        self.window = window
        self.broadcast = broadcast
        self.clock = clock
        self._record = redis.register_script(RECORD)
        self._blocked: dict[str, float] = {}  # address -> the clock's time its block ends
        if broadcast is not None:
            broadcast.on(BLOCKED, self._blocked_elsewhere)

    def check(self, client_ip: str | None) -> None:
        """Raise TooManyAuthFailures while `client_ip` is blocked (before any credential is read)."""
        if not self._blocked or client_ip is None or self.limit <= 0:  # 0: off, others' blocks too
            return
        until = self._blocked.get(client_ip)
        if until is None:
            return
        left = until - self.clock()
        if left <= 0:
            del self._blocked[client_ip]
            return
        raise TooManyAuthFailures(max(1, math.ceil(left)))

    async def failed(self, client_ip: str | None) -> None:
        """Count one failed authentication of `client_ip`; block it when that reaches the limit."""
        if self.limit <= 0 or not client_ip:
            return
        try:
            count, ttl = await self._record(keys=[failures_key(self.prefix, client_ip)], args=[self.window])
        except (RedisError, OSError) as exc:
            metrics.redis_unavailable.labels("auth_failures", "fail_open").inc()
            log.warning("failed authentication not counted: redis unavailable", extra={"error": str(exc)})
            return
        if int(count) < self.limit:
            return
        seconds = max(1, int(ttl))
        self._block(client_ip, seconds)
        if int(count) == self.limit:  # the failure that reached the limit: tell the other workers
            metrics.auth_failure_blocks.inc()
            log.warning(
                "client address blocked after failed authentications",
                extra={"client_ip": client_ip, "failures": int(count), "seconds": seconds},
            )
            await self._announce(client_ip, seconds)

    async def _announce(self, client_ip: str, seconds: int) -> None:
        if self.broadcast is None:
            return
        try:
            await self.broadcast.publish(BLOCKED, ip=client_ip, seconds=seconds)
        except (RedisError, OSError) as exc:  # the others block it at its next failure on them
            log.warning("block not broadcast", extra={"error": str(exc)})

    def _block(self, client_ip: str, seconds: float) -> None:
        self._blocked[client_ip] = self.clock() + seconds
        if len(self._blocked) > 10_000:  # drop the ended blocks; a flood of addresses stays bounded
            now = self.clock()
            self._blocked = {ip: until for ip, until in self._blocked.items() if until > now}

    def _blocked_elsewhere(self, news: dict[str, Any]) -> None:
        self._block(str(news["ip"]), float(news["seconds"]))
