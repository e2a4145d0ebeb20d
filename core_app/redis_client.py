"""The process's Redis client: one server, or a Redis Cluster with REDIS_CLUSTER=true (D180).

Cluster mode needs every key that a Lua script or a MULTI touches together in one slot: such keys
carry the merchant (or shop) as a hash tag, `{...}`, so one merchant's keys share a slot. Multi-key
DEL (the sink's cache invalidation) is split per slot by redis-py, and PUBLISH reaches the subscribers
of every node, so the reply channels and the security broadcast need nothing more.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.asyncio import Redis, RedisCluster
from redis.crc import key_slot

from core_app.settings import Settings

RedisClient = Redis | RedisCluster  # what `Runtime.redis` and the adapters hold


def open_redis(settings: Settings, **options: Any) -> RedisClient:
    """An asyncio client for REDIS_URL (in cluster mode a startup node: the others are discovered)."""
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_dsn, **options)
    return Redis.from_url(settings.redis_dsn, **options)


def open_sync_redis(settings: Settings, **options: Any) -> redis.Redis | redis.RedisCluster:
    """A synchronous client, for the operator commands."""
    if settings.redis_cluster:
        return redis.RedisCluster.from_url(settings.redis_dsn, **options)
    return redis.Redis.from_url(settings.redis_dsn, **options)


def is_cluster(client: object) -> bool:
    return isinstance(client, (RedisCluster, redis.RedisCluster))


def slot_of(key: str) -> int:
    """The Cluster slot of `key` (its hash tag's, when it has one)."""
    return int(key_slot(key.encode()))
