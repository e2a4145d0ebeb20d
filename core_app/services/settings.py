"""Program-settings use cases, shared by REST, GraphQL and gRPC.

Reads: the owner of the merchant's key (table), then Redis `settings:{merchant_id}` (7 days), then
PostgreSQL, cached. Writes: validated here, applied by the owner agent (core.settings.commands).
"""

from __future__ import annotations

import json
from typing import Any

from core_app import metrics, read_source
from core_app.app import app
from core_app.domain.errors import NotFound
from core_app.domain.events import parse_uuid
from core_app.domain.program_settings import rtl_languages, validate_loyalty_config, validate_rfm_thresholds
from core_app.repository import fetch_settings
from core_app.routing import owner_url, same_worker
from core_app.runtime import get_runtime
from core_app.security import FULL, SETTINGS_UPDATE, VIEW, guard
from core_app.services.commands import ask_owner
from core_app.services.owners import owner_get
from core_app.stream_topics import settings_commands
from tables.settings import local_settings

SETTINGS_CACHE_TTL = 7 * 24 * 3600


def settings_view(settings: dict[str, Any]) -> dict[str, Any]:
    """The public shape: no internal bookkeeping, and the configured RTL languages marked."""
    view = {k: v for k, v in settings.items() if k != "request_id"}
    return view | {"rtl_languages": rtl_languages(settings.get("loyalty_config") or {})}


async def get_program_settings(merchant_id: Any) -> dict[str, Any]:
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    await guard(merchant_id, VIEW)
    runtime = get_runtime()
    owner = owner_url(app, "program_settings", merchant_id)
    if owner is None or same_worker(owner, runtime.settings.web_url):
        found, source = local_settings(merchant_id), "table"
    else:
        found, source = await owner_get(runtime, owner, f"/internal/v1/settings/{merchant_id}"), "owner"
    if found is not None:
        read_source.record(source)
        return settings_view(found)
    cache_key = runtime.redis_key(f"settings:{merchant_id}")
    cached = await runtime.redis.get(cache_key)
    metrics.cache_lookup("settings", hit=cached is not None)
    if cached is not None:
        read_source.record("redis")
        return settings_view(json.loads(cached))
    found = await fetch_settings(runtime.pool, merchant_id)
    if found is None:
        raise NotFound("program settings of merchant", merchant_id)
    await runtime.redis.set(cache_key, json.dumps(found), ex=SETTINGS_CACHE_TTL)
    read_source.record("postgres")
    return settings_view(found)


async def update_program_settings(
    merchant_id: Any, rfm_thresholds: Any, loyalty_config: Any
) -> dict[str, Any]:
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    caller = await guard(merchant_id, FULL, flag=SETTINGS_UPDATE)
    command = {
        "kind": "update_settings",
        "merchant_id": merchant_id,
        "actor": caller.subject if caller else "unknown",
        "rfm_thresholds": validate_rfm_thresholds(rfm_thresholds),
        "loyalty_config": validate_loyalty_config(loyalty_config),
    }
    return settings_view(await ask_owner(settings_commands, merchant_id, command))
