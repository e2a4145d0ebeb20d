"""`core.settings.commands`: program-settings updates, applied by the owner of the merchant's key.

The input was validated by the service; the agent checks the merchant exists (the sink could not
store settings for an unknown merchant), bumps the version and writes the table. The sink persists it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Protocol

from faust.types import StreamT

from agents.pipeline import now_iso
from agents.replies import run_and_reply
from core_app import log_context, topics, tracing
from core_app import stream_topics as faust_topics
from core_app.app import app
from core_app.domain.errors import NotFound
from core_app.program_settings_store import PgProgramSettings
from core_app.retry import infra_retry
from core_app.services.ports import ProgramSettingsStore
from tables.program_settings import EventTable


class SettingsTable(Protocol):
    """The owner's table while it processes the command (tables/program_settings.EventTable)."""

    def read(self, merchant_id: str) -> dict[str, Any] | None: ...

    def save(self, settings: dict[str, Any]) -> None: ...


async def update_settings(
    command: dict[str, Any], table: SettingsTable, store: ProgramSettingsStore
) -> dict[str, Any]:
    merchant_id = command["merchant_id"]
    current = table.read(merchant_id)
    if current is None:  # first touch: PostgreSQL may hold settings the table has not seen
        current = await infra_retry()(store.fetch, merchant_id)
        if current is None and not await infra_retry()(store.merchant_exists, merchant_id):
            raise NotFound("merchant", merchant_id)
        current = table.read(merchant_id) or current  # re-read after the awaits
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
    table.save(settings)
    await infra_retry()(
        store.record_audit,
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
        store = PgProgramSettings(app.components.runtime.pool)
        replies = app.components.runtime.redis
        bound = log_context.bind(merchant_id=command.get("merchant_id"))  # this command's lines (D149)
        try:
            with tracing.batch_span(topics.SETTINGS_COMMANDS, [event.headers]):
                await run_and_reply(replies, command, update_settings(command, EventTable(event), store))
        finally:
            log_context.unbind(bound)
