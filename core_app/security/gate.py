"""Per-request admission in one Redis round trip: IP allow-list, replay check, rate limit.

One Lua script (atomic, so two workers sharing Redis share one count):
1. `ip_whitelist:{<merchant_id>}` (a set, no TTL: configuration, never evicted, D181): when it has
   members, the client address must be one.
2. `replay:{<merchant_id>}:<key id>:<nonce>` of a signed request: a signature seen within the
   signature window is refused.
3. `rate_limit:{<merchant_id>}:<endpoint>` (a sorted set of admission times, TTL 60 s): a sliding
   one-second window, at most RATE_LIMIT_PER_SECOND admissions in any second. Refused requests are
   not counted. The clock is Redis's (`TIME`), so workers with skewed clocks agree.
The braces are a Redis Cluster hash tag: one request's three keys share its merchant's slot (D180).
Only when all pass is the request counted and its signature remembered (the replay check is a
`SET NX`, deleted again when the rate limit refuses). A batch reads the clock, each allow-list's size
and each window once, so Redis's work per request is two writes in the common case.

Batching: the requests that reach admission while a script call is in flight (or in the same turn
of the event loop) go to Redis together, as one call of the same script that runs the three steps
for each request in arrival order, and hands each its own verdict. Every request is still checked
and counted on its own, atomically, exactly as if it had come alone (the 101st still gets 429, a
replay inside one batch is still refused); what is shared is the round trip and redis-py's cost per
command (about 150-200 us of CPU), which dominated the cost of the security layer. One call is in
flight at a time: the requests that arrive meanwhile make the next batch. (Two in flight made smaller
batches: ~9 us more worker CPU per signed read in bench/reads.py, and no better p99.)

In a Redis Cluster one script call may only touch one slot, so a batch is split by slot and its
calls go out together; against a single server a batch stays one call.

Redis down: SECURITY_REDIS_FAIL_MODE=closed (default) answers 503, because the allow-list and replay
protection cannot be checked; `open` lets requests through unchecked. Both are counted in
`core_security_redis_unavailable_total`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from typing import Any, NamedTuple

from redis.exceptions import RedisError

from core_app.redis_client import RedisClient, is_cluster, slot_of
from core_app.security import metrics
from core_app.security.errors import Forbidden, RateLimited, SecurityUnavailable, Unauthenticated

log = logging.getLogger(__name__)

RATE_LIMIT_TTL = 60
WINDOW_US = 1_000_000
MAX_BATCH = 256  # requests per script call

ADMIT = """
-- KEYS: the batch's distinct allow-list and window keys. ARGV[1..5]: limit, window (us), window TTL
-- (s), member prefix, first member number; then one argument per request, in arrival order:
-- "<allow-list key index> <window key index> <replay TTL, 0: no replay check> <client ip> <replay key>"
-- (ip and replay key may be empty; none of the fields holds a space). Reply: verdict, value per
-- request. One argument per request, not six: redis-py encodes each argument in Python.
-- One clock reading, one allow-list size and one window trim per key serve the whole batch: the
-- script is atomic, so every request in it is admitted at the same instant anyway.
local limit, window, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local member_prefix, first_member = ARGV[4], tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local listed, counts, reply = {}, {}, {}
local function admit(allowlist, window_key, replay_key, ip, member, replay_ttl)
  if listed[allowlist] == nil then
    listed[allowlist] = redis.call('SCARD', allowlist) > 0
  end
  if listed[allowlist] and (ip == '' or redis.call('SISMEMBER', allowlist, ip) == 0) then
    return 1, 0
  end
  -- SET NX is the replay check and the remembering in one call; undone below if the limit refuses
  if replay_ttl > 0 and not redis.call('SET', replay_key, '1', 'EX', replay_ttl, 'NX') then
    return 2, 0
  end
  local count = counts[window_key]
  if count == nil then
    redis.call('ZREMRANGEBYSCORE', window_key, '-inf', now - window)
    count = redis.call('ZCARD', window_key)
  end
  if count >= limit then
    counts[window_key] = count
    if replay_ttl > 0 then
      redis.call('DEL', replay_key)
    end
    local oldest = redis.call('ZRANGE', window_key, 0, 0, 'WITHSCORES')
    return 3, oldest[2] and tonumber(oldest[2]) + window - now or window
  end
  redis.call('ZADD', window_key, now, member)
  counts[window_key] = count + 1
  return 0, 0
end
for i = 6, #ARGV do
  local a, w, replay_ttl, ip, replay_key = string.match(ARGV[i], '^(%d+) (%d+) (%d+) (%S*) (%S*)$')
  local member = member_prefix .. (first_member + i - 6)
  local verdict, value = admit(KEYS[tonumber(a)], KEYS[tonumber(w)], replay_key, ip, member,
    tonumber(replay_ttl))
  reply[#reply + 1] = verdict
  reply[#reply + 1] = value
end
for window_key in pairs(counts) do
  redis.call('EXPIRE', window_key, ttl)
end
return reply
"""

ALLOWED = """
if redis.call('SCARD', KEYS[1]) > 0 and (ARGV[1] == '' or redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0) then
  return 0
end
return 1
"""


# Verdicts: the script's codes, and UNAVAILABLE (Redis unreachable; the value is the error).
ADMITTED, NOT_LISTED, REPLAYED, LIMITED, UNAVAILABLE = 0, 1, 2, 3, -1
Verdict = tuple[int, Any]  # (code, value): LIMITED's value is the microseconds until a slot frees


class Admission(NamedTuple):
    """One request's part of an ADMIT call: its keys, client address and replay TTL."""

    allowlist: str
    window: str
    replay: str  # the replay key, or "" when the request has none
    ip: str  # "" when unknown
    replay_ttl: int  # 0: no replay check


def _address(client_ip: str | None) -> str:
    """The address as the script reads it: normalised addresses hold no space; anything else counts
    as unknown (refused wherever an allow-list is set)."""
    if not client_ip or " " in client_ip or not client_ip.isprintable():  # C-speed checks, per request
        return ""
    return client_ip


def allowlist_key(merchant_id: str) -> str:
    return f"ip_whitelist:{{{merchant_id}}}"


def rate_key(merchant_key: str, endpoint: str) -> str:
    return f"rate_limit:{{{merchant_key}}}:{endpoint}"


def replay_key(merchant_key: str, replay_id: str) -> str:
    return f"replay:{{{merchant_key}}}:{replay_id}"


def migrate_legacy_allowlists(client: Any, prefix: str = "") -> int:
    """Move allow-lists from their names before D180 (`ip_whitelist:<merchant>`, untagged) to the
    tagged ones, and drop the 7-day TTL earlier versions set (D181). Idempotent; `core migrate`
    runs it with a synchronous client. Returns how many keys moved."""
    moved = 0
    start = len(prefix) + len("ip_whitelist:")
    for raw in list(client.scan_iter(match=f"{prefix}ip_whitelist:*", count=500)):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        merchant = key[start:]
        if merchant.startswith("{"):
            client.persist(key)
            continue
        members = client.smembers(key)
        if members:
            client.sadd(prefix + allowlist_key(merchant), *members)
        client.delete(key)
        moved += 1
    return moved


def _by_slot(
    batch: list[tuple[Admission, asyncio.Future[Verdict]]],
) -> list[list[tuple[Admission, asyncio.Future[Verdict]]]]:
    """`batch` in parts whose keys share a Cluster slot (a request's keys share its merchant's tag),
    arrival order kept within each part."""
    parts: dict[int, list[tuple[Admission, asyncio.Future[Verdict]]]] = {}
    for request in batch:
        parts.setdefault(slot_of(request[0].window), []).append(request)
    return list(parts.values())


class Gate:
    def __init__(
        self, redis: RedisClient, *, prefix: str = "", limit: int = 100, fail_mode: str = "closed"
    ) -> None:
        self.redis = redis
        self.cluster = is_cluster(redis)  # one script call per slot
        self.prefix = prefix
        self.limit = limit
        self.fail_open = fail_mode == "open"
        self._admit = redis.register_script(ADMIT)
        self._allowed = redis.register_script(ALLOWED)
        if any(c.isspace() for c in prefix):
            raise ValueError("REDIS_KEY_PREFIX must not contain whitespace")  # the script's separator
        self._pending: list[tuple[Admission, asyncio.Future[Verdict]]] = []
        self._sender: asyncio.Task[None] | None = None  # one script call in flight at a time
        self._member_prefix = f"{os.urandom(6).hex()}:"  # per gate (worker): members never collide
        self._next_member = 0

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def admission(
        self,
        merchant_key: str,
        endpoint: str,
        client_ip: str | None,
        replay_id: str | None = None,
        replay_ttl: int = 0,
    ) -> asyncio.Future[Verdict]:
        """The request's verdict, due from the next script call (batched with whatever else waits).

        Await it, then `enforce()` it. The HTTP path (core_app/security/http.py) awaits this future
        itself rather than through a wrapping coroutine: every coroutine layer between a request and
        its reply costs a resumption when the reply comes.
        """
        admission = Admission(
            self.key(allowlist_key(merchant_key)),
            self.key(rate_key(merchant_key, endpoint)),
            self.key(replay_key(merchant_key, replay_id)) if replay_id else "",
            _address(client_ip),
            replay_ttl if replay_id else 0,
        )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Verdict] = loop.create_future()
        self._pending.append((admission, future))
        sender = self._sender
        if sender is None or sender.done() or sender.get_loop() is not loop:
            self._sender = loop.create_task(self._send())
        return future

    def enforce(self, verdict: Verdict) -> None:
        """Raise unless `verdict` admits the request (Redis unreachable: the fail mode decides)."""
        code, value = verdict
        if code == ADMITTED:
            return
        if code == UNAVAILABLE:
            self._unavailable("admission", value)
        elif code == NOT_LISTED:
            raise Forbidden("client address is not on the merchant's IP allow-list", reason="ip")
        elif code == REPLAYED:
            raise Unauthenticated("signature already used (replay)")
        elif code == LIMITED:
            raise RateLimited(max(1, math.ceil(int(value) / 1_000_000)))

    async def _send(self) -> None:
        """Send the waiting requests, one script call at a time, until none waits (one of these runs
        at a time: the requests that arrive while Redis runs a batch make the next one)."""
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            batch = [request for request in batch if not request[1].done()]  # callers gone: not counted
            if not batch:
                continue
            try:
                if self.cluster:
                    await asyncio.gather(*(self._run(part) for part in _by_slot(batch)))
                else:
                    await self._run(batch)
            except asyncio.CancelledError:
                for _, future in batch + self._pending:
                    future.cancel()
                self._pending = []
                raise

    async def _run(self, batch: list[tuple[Admission, asyncio.Future[Verdict]]]) -> None:
        """One script call for `batch` (one slot's requests in a cluster); each waiter gets its verdict."""
        keys, args = self._script_call([admission for admission, _ in batch])
        try:
            reply = await self._admit(keys=keys, args=args)
        except (RedisError, OSError) as exc:  # each waiter applies the fail mode
            for _, future in batch:
                if not future.done():
                    future.set_result((UNAVAILABLE, exc))
            return
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for n, (_, future) in enumerate(batch):
            if not future.done():
                future.set_result((int(reply[2 * n]), int(reply[2 * n + 1])))

    def _script_call(self, batch: list[Admission]) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of one ADMIT call (see the script) for `batch`, in order."""
        index: dict[str, int] = {}  # distinct key -> its 1-based place in KEYS
        lines = []
        for admission in batch:
            allow = index.setdefault(admission.allowlist, len(index) + 1)
            window = index.setdefault(admission.window, len(index) + 1)
            lines.append(f"{allow} {window} {admission.replay_ttl} {admission.ip} {admission.replay}")
        first, self._next_member = self._next_member, self._next_member + len(batch)
        return list(index), [self.limit, WINDOW_US, RATE_LIMIT_TTL, self._member_prefix, first, *lines]

    async def ip_allowed(self, merchant_id: str, client_ip: str | None) -> None:
        try:
            allowed = await self._allowed(keys=[self.key(allowlist_key(merchant_id))], args=[client_ip or ""])
        except (RedisError, OSError) as exc:
            self._unavailable("ip_allowlist", exc)
            return
        if not allowed:
            raise Forbidden("client address is not on the merchant's IP allow-list", reason="ip")

    def _unavailable(self, check: str, exc: BaseException) -> None:
        outcome = "fail_open" if self.fail_open else "fail_closed"
        metrics.redis_unavailable.labels(check, outcome).inc()
        log.warning(
            "security check without redis", extra={"check": check, "outcome": outcome, "error": str(exc)}
        )
        if not self.fail_open:
            raise SecurityUnavailable("security checks are unavailable; retry shortly")
