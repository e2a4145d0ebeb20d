"""Adapters of the program-settings ports (core_app/services/ports.py) on PostgreSQL, Redis and the
owner agent's command topic. The table read is tables/program_settings.OwnerReads."""

from __future__ import annotations

import json
from typing import Any

import aiopg
from redis.asyncio import Redis

from core_app import metrics, topics
from core_app.repository import fetch_settings, merchant_exists, record_audit
from core_app.services.ports import OwnerClient

SETTINGS_CACHE_TTL = 7 * 24 * 3600


class PgProgramSettings:
    """ProgramSettingsStore on the service's pool."""

    def __init__(self, pool: aiopg.Pool) -> None:
        self.pool = pool

    async def fetch(self, merchant_id: str) -> dict[str, Any] | None:
        return await fetch_settings(self.pool, merchant_id)

    async def merchant_exists(self, merchant_id: str) -> bool:
        return await merchant_exists(self.pool, merchant_id)

    async def record_audit(
        self,
        *,
        merchant_id: str,
        actor: str,
        action: str,
        entity_type: str,
        entity_id: str,
        details: dict[str, Any],
        idempotency_key: str,
    ) -> None:
        await record_audit(
            self.pool,
            merchant_id=merchant_id,
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            details=details,
            idempotency_key=idempotency_key,
        )


class RedisProgramSettingsCache:
    """ProgramSettingsCache: `settings:{merchant_id}` as JSON for SETTINGS_CACHE_TTL (counted)."""

    def __init__(self, redis: Redis, key_prefix: str) -> None:
        self.redis = redis
        self.key_prefix = key_prefix

    def _key(self, merchant_id: str) -> str:
        return f"{self.key_prefix}settings:{merchant_id}"

    async def get(self, merchant_id: str) -> dict[str, Any] | None:
        cached = await self.redis.get(self._key(merchant_id))
        metrics.cache_lookup("settings", hit=cached is not None)
        return dict(json.loads(cached)) if cached is not None else None

    async def put(self, merchant_id: str, settings: dict[str, Any]) -> None:
        await self.redis.set(self._key(merchant_id), json.dumps(settings), ex=SETTINGS_CACHE_TTL)


class OwnerCommands:
    """ProgramSettingsCommands over `core.settings.commands` and the Redis reply channel."""

    def __init__(self, owners: OwnerClient) -> None:
        self.owners = owners

    async def update(self, merchant_id: str, command: dict[str, Any]) -> dict[str, Any]:
        return await self.owners.ask(topics.SETTINGS_COMMANDS, merchant_id, command)
