"""`core.settings.commands`: program-settings updates, applied by the owner of the merchant's key.

The input was validated by the service; the agent checks the merchant exists (the sink could not
store settings for an unknown merchant), bumps the version and writes the table. The sink persists it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from faust.types import EventT, StreamT

from agents.pipeline import now_iso
from agents.replies import run_and_reply
from core_app import stream_topics as faust_topics
from core_app.app import app
from core_app.domain.errors import NotFound
from core_app.repository import fetch_settings, merchant_exists, record_audit
from core_app.retry import infra_retry
from core_app.runtime import get_runtime
from tables.settings import read_settings, save_settings


async def update_settings(command: dict[str, Any], event: EventT) -> dict[str, Any]:
    merchant_id = command["merchant_id"]
    pool = get_runtime().pool
    current = read_settings(merchant_id, event)
    if current is None:  # first touch: PostgreSQL may hold settings the table has not seen
        current = await infra_retry()(fetch_settings, pool, merchant_id)
        if current is None and not await infra_retry()(merchant_exists, pool, merchant_id):
            raise NotFound("merchant", merchant_id)
        current = read_settings(merchant_id, event) or current  # re-read after the awaits
    if current is not None and current.get("request_id") == command["request_id"]:
        return current  # a replayed command
    now = now_iso()
    settings = {
        "id": (current or {}).get("id") or str(uuid.uuid4()),
        "merchant_id": merchant_id,
        "rfm_thresholds": command["rfm_thresholds"],
        "loyalty_config": command["loyalty_config"],
        "version": (current or {}).get("version", 0) + 1,
        "created_at": (current or {}).get("created_at") or now,
        "updated_at": now,
        "request_id": command["request_id"],
    }
    save_settings(settings, event)
    await infra_retry()(
        record_audit,
        pool,
        merchant_id=merchant_id,
        actor=command.get("actor") or "unknown",
        action="settings.update",
        entity_type="program_settings",
        entity_id=settings["id"],
        details={"version": settings["version"], "request_id": command["request_id"]},
        idempotency_key=command["request_id"],
    )
    return settings


@app.agent(faust_topics.settings_commands, name="settings-commands")
async def settings_commands_agent(stream: StreamT) -> None:
    async for event in stream.events():
        command = json.loads(event.value)
        await run_and_reply(command, update_settings(command, event))
