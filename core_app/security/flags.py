"""Per-merchant feature flags: `customer_import_enabled`, `rfm_score_enabled`, `settings_update_enabled`.

With LAUNCHDARKLY_SDK_KEY set, LaunchDarkly decides (context kind `merchant`, key = merchant id;
LaunchDarkly keeps its own audit trail of changes). Otherwise Redis does, read on every check so a
change takes effect at once on every worker:

    HSET feature_flags:{merchant_id} rfm_score_enabled off      (on | off; missing = on)

Operators change them with `core flags set <merchant_id> <flag> on|off`, which also writes an
`audit_logs` row. The hash has no TTL on purpose: it is configuration, not a cache, and Redis'
`volatile-lru` evicts only keys with a TTL, so a switched-off feature never comes back on by eviction
(D181). One key per merchant, so Redis Cluster needs nothing more. A flag that cannot be read
(Redis down) counts as on: flags are product switches, not access control, and every request is
still authenticated and authorised.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core_app.security import metrics

log = logging.getLogger(__name__)

CUSTOMER_IMPORT = "customer_import_enabled"
RFM_SCORE = "rfm_score_enabled"
SETTINGS_UPDATE = "settings_update_enabled"
FLAGS = (CUSTOMER_IMPORT, RFM_SCORE, SETTINGS_UPDATE)
DEFAULT = True


def flags_key(merchant_id: str) -> str:
    return f"feature_flags:{merchant_id}"


def check_flag_name(flag: str) -> str:
    if flag not in FLAGS:
        raise ValueError(f"unknown flag {flag!r}; known: {', '.join(FLAGS)}")
    return flag


class FlagSource(Protocol):
    async def enabled(self, merchant_id: str, flag: str) -> bool: ...

    def close(self) -> None: ...


class RedisFlags:
    def __init__(self, redis: Redis, prefix: str = "") -> None:
        self.redis = redis
        self.prefix = prefix

    async def enabled(self, merchant_id: str, flag: str) -> bool:
        try:
            value = await self.redis.hget(f"{self.prefix}{flags_key(merchant_id)}", check_flag_name(flag))
        except (RedisError, OSError) as exc:
            metrics.redis_unavailable.labels("feature_flag", "default").inc()
            log.warning("feature flag unreadable; using the default", extra={"flag": flag, "error": str(exc)})
            return DEFAULT
        if value is None:
            return DEFAULT
        return value not in (b"off", b"false", b"0")

    def close(self) -> None:
        pass


class LaunchDarklyFlags:
    """LaunchDarkly's server SDK evaluates in memory (flags stream in on a background thread)."""

    def __init__(self, sdk_key: str, config: Any = None, start_wait: float = 5.0) -> None:
        from ldclient.client import LDClient
        from ldclient.config import Config

        self.client = LDClient(config or Config(sdk_key), start_wait=start_wait)

    async def enabled(self, merchant_id: str, flag: str) -> bool:
        from ldclient import Context

        context = Context.builder(merchant_id).kind("merchant").build()
        return bool(self.client.variation(check_flag_name(flag), context, DEFAULT))

    def close(self) -> None:
        self.client.close()


def set_flag_sync(redis: Any, prefix: str, merchant_id: str, flag: str, on: bool) -> None:
    """Through a synchronous redis client (the CLI)."""
    redis.hset(f"{prefix}{flags_key(merchant_id)}", check_flag_name(flag), "on" if on else "off")
