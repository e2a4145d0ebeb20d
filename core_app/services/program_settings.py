"""Program-settings use cases, shared by REST, GraphQL and gRPC.

Reads: the owner of the merchant's key (table), then Redis `settings:{merchant_id}` (7 days), then
PostgreSQL, cached. Writes: validated here, applied by the owner agent (core.settings.commands).
"""

from __future__ import annotations

from typing import Any

from core_app import read_source
from core_app.domain.errors import NotFound
from core_app.domain.events import parse_uuid
from core_app.domain.program_settings import rtl_languages, validate_loyalty_config, validate_rfm_thresholds
from core_app.security.flags import SETTINGS_UPDATE
from core_app.security.principal import FULL, VIEW, Principal
from core_app.services.ports import (
    Guard,
    ProgramSettingsCache,
    ProgramSettingsCommands,
    ProgramSettingsOwner,
    ProgramSettingsStore,
)


def settings_view(settings: dict[str, Any]) -> dict[str, Any]:
    """The public shape: no internal bookkeeping, and the configured RTL languages marked."""
    view = {k: v for k, v in settings.items() if k != "request_id"}
    return view | {"rtl_languages": rtl_languages(settings.get("loyalty_config") or {})}


class ProgramSettingsService:
    def __init__(
        self,
        owner: ProgramSettingsOwner,
        cache: ProgramSettingsCache,
        store: ProgramSettingsStore,
        commands: ProgramSettingsCommands,
        guard: Guard,
    ) -> None:
        self.owner = owner
        self.cache = cache
        self.store = store
        self.commands = commands
        self.guard = guard

    async def get(self, principal: Principal | None, merchant_id: Any) -> dict[str, Any]:
        merchant_id = parse_uuid(merchant_id, "merchant_id")
        await self.guard.guard(principal, merchant_id, VIEW)
        found, source = await self.owner.read(merchant_id)
        if found is not None:
            read_source.record(source)
            return settings_view(found)
        cached = await self.cache.get(merchant_id)
        if cached is not None:
            read_source.record("redis")
            return settings_view(cached)
        found = await self.store.fetch(merchant_id)
        if found is None:
            raise NotFound("program settings of merchant", merchant_id)
        await self.cache.put(merchant_id, found)
        read_source.record("postgres")
        return settings_view(found)

    async def update(
        self, principal: Principal | None, merchant_id: Any, rfm_thresholds: Any, loyalty_config: Any
    ) -> dict[str, Any]:
        merchant_id = parse_uuid(merchant_id, "merchant_id")
        caller = await self.guard.guard(principal, merchant_id, FULL, flag=SETTINGS_UPDATE)
        command = {
            "kind": "update_settings",
            "merchant_id": merchant_id,
            "actor": caller.subject if caller else "unknown",
            "rfm_thresholds": validate_rfm_thresholds(rfm_thresholds),
            "loyalty_config": validate_loyalty_config(loyalty_config),
        }
        return settings_view(await self.commands.update(merchant_id, command))
