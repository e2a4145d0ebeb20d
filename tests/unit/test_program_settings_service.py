"""Program-settings use cases (core_app/services/program_settings.py) and the owner agent's command
handling (agents/program_settings_commands.py), through the fakes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from agents.program_settings_commands import update_settings
from core_app import read_source, topics
from core_app.domain.errors import Conflict, NotFound, ValidationFailed
from core_app.program_settings_store import OwnerCommands
from core_app.security.errors import FeatureDisabled, Forbidden
from core_app.security.flags import SETTINGS_UPDATE
from core_app.security.principal import FULL, VIEW
from core_app.services.program_settings import ProgramSettingsService
from tests.unit.fakes import (
    FakeGuard,
    FakeOwnerClient,
    FakeProgramSettings,
    FakeSettingsCommands,
    FakeSettingsTable,
    caller,
)

MERCHANT = str(uuid.uuid4())
THRESHOLDS = {
    "recency": {"min": 7, "max": 90},
    "frequency": {"min": 1, "max": 10},
    "monetary": {"min": 50, "max": 2500},
}
LOYALTY = {"points_per_dollar": 2, "languages": ["en", "ar"]}
SAVED = {"id": "s-1", "merchant_id": MERCHANT, "version": 3, "loyalty_config": LOYALTY, "request_id": "r"}


def service(
    data: FakeProgramSettings | None = None, commands: FakeSettingsCommands | None = None
) -> tuple[ProgramSettingsService, FakeProgramSettings, FakeSettingsCommands, FakeGuard]:
    data = data or FakeProgramSettings()
    commands = commands or FakeSettingsCommands()
    guard = FakeGuard(installed={MERCHANT})
    return ProgramSettingsService(data, data, data, commands, guard), data, commands, guard


async def sources_of(call: Any) -> tuple[Any, str | None]:
    token = read_source.begin()
    try:
        return await call, read_source.summary()
    finally:
        read_source.end(token)


async def test_get_reads_the_owners_table_first() -> None:
    svc, _, _, _ = service(FakeProgramSettings(table={MERCHANT: SAVED}))
    view, source = await sources_of(svc.get(caller(MERCHANT, VIEW), MERCHANT))
    assert view["version"] == 3 and "request_id" not in view
    assert view["rtl_languages"] == ["ar"] and source == "table"


async def test_get_falls_back_to_the_cache_then_postgres_and_caches() -> None:
    svc, data, _, _ = service(FakeProgramSettings(cache={MERCHANT: SAVED}))
    assert (await sources_of(svc.get(caller(MERCHANT, VIEW), MERCHANT)))[1] == "redis"
    svc, data, _, _ = service(FakeProgramSettings(postgres={MERCHANT: SAVED}))
    assert (await sources_of(svc.get(caller(MERCHANT, VIEW), MERCHANT)))[1] == "postgres"
    assert data.cache[MERCHANT] == SAVED


async def test_get_of_a_merchant_without_settings_is_not_found() -> None:
    svc, _, _, _ = service()
    with pytest.raises(NotFound):
        await svc.get(caller(MERCHANT, VIEW), MERCHANT)


async def test_get_refuses_another_merchants_caller_and_a_bad_id() -> None:
    svc, _, _, _ = service(FakeProgramSettings(table={MERCHANT: SAVED}))
    with pytest.raises(Forbidden):
        await svc.get(caller(str(uuid.uuid4()), FULL), MERCHANT)
    with pytest.raises(ValidationFailed):
        await svc.get(caller(MERCHANT, VIEW), "not-a-uuid")


async def test_update_sends_the_validated_command_to_the_owner() -> None:
    svc, _, commands, guard = service()
    view = await svc.update(caller(MERCHANT, FULL), MERCHANT, THRESHOLDS, LOYALTY)
    [command] = commands.commands
    assert command["kind"] == "update_settings" and command["actor"] == f"user@{MERCHANT}"
    assert command["rfm_thresholds"] == THRESHOLDS and view["rtl_languages"] == ["ar"]
    assert guard.checked == [(MERCHANT, FULL, SETTINGS_UPDATE)]


async def test_update_refuses_invalid_input_before_sending() -> None:
    svc, _, commands, _ = service()
    with pytest.raises(ValidationFailed) as caught:
        await svc.update(caller(MERCHANT, FULL), MERCHANT, THRESHOLDS | {"recency": [1]}, LOYALTY)
    assert caught.value.field == "rfm_thresholds.recency" and commands.commands == []


async def test_update_needs_full_permission_and_the_flag() -> None:
    svc, _, commands, guard = service()
    with pytest.raises(Forbidden):
        await svc.update(caller(MERCHANT, VIEW), MERCHANT, THRESHOLDS, LOYALTY)
    guard.disabled_flags.add(SETTINGS_UPDATE)
    with pytest.raises(FeatureDisabled):
        await svc.update(caller(MERCHANT, FULL), MERCHANT, THRESHOLDS, LOYALTY)
    assert commands.commands == []


async def test_update_of_an_uninstalled_merchant_is_not_found() -> None:
    svc, _, _, _ = service()
    other = str(uuid.uuid4())
    with pytest.raises(NotFound):
        await svc.update(caller(other, FULL), other, THRESHOLDS, LOYALTY)


async def test_update_reports_the_owners_conflict() -> None:
    svc, _, _, _ = service(commands=FakeSettingsCommands(error=Conflict("version", "changed meanwhile")))
    with pytest.raises(Conflict):
        await svc.update(caller(MERCHANT, FULL), MERCHANT, THRESHOLDS, LOYALTY)


# -- the owner agent's handling -------------------------------------------------------------------


def command(request_id: str = "req-1") -> dict[str, Any]:
    return {
        "kind": "update_settings",
        "merchant_id": MERCHANT,
        "actor": "user@x",
        "rfm_thresholds": THRESHOLDS,
        "loyalty_config": LOYALTY,
        "request_id": request_id,
    }


async def test_first_update_of_a_known_merchant_writes_version_one_and_audits() -> None:
    table, store = FakeSettingsTable(), FakeProgramSettings(merchants={MERCHANT})
    saved = await update_settings(command(), table, store)
    assert saved["version"] == 1 and table.rows[MERCHANT] == saved
    [audit] = store.audits
    assert audit["action"] == "settings.update" and audit["idempotency_key"] == "req-1"


async def test_update_bumps_the_version_of_postgres_settings_the_table_has_not_seen() -> None:
    table, store = FakeSettingsTable(), FakeProgramSettings(postgres={MERCHANT: SAVED | {"created_at": "t0"}})
    saved = await update_settings(command(), table, store)
    assert (saved["version"], saved["id"], saved["created_at"]) == (4, "s-1", "t0")


async def test_a_replayed_command_changes_nothing() -> None:
    table, store = FakeSettingsTable(), FakeProgramSettings(merchants={MERCHANT})
    first = await update_settings(command(), table, store)
    again = await update_settings(command(), table, store)
    assert again == first and len(store.audits) == 1


async def test_update_for_an_unknown_merchant_is_not_found() -> None:
    with pytest.raises(NotFound):
        await update_settings(command(), FakeSettingsTable(), FakeProgramSettings())


async def test_owner_commands_ask_the_settings_owner_keyed_by_merchant() -> None:
    """The adapter behind ProgramSettingsCommands: one command on the settings topic, keyed by the
    merchant, answered by the owner (a wrong call shape was a 500 on every settings write)."""
    owners = FakeOwnerClient(answer=lambda command: {"merchant_id": command["merchant_id"], "version": 4})
    result = await OwnerCommands(owners).update(MERCHANT, {"merchant_id": MERCHANT, "op": "update"})
    assert result == {"merchant_id": MERCHANT, "version": 4}
    assert owners.asked == [(topics.SETTINGS_COMMANDS, MERCHANT, {"merchant_id": MERCHANT, "op": "update"})]


async def test_the_settings_view_carries_segment_counts_and_degrades() -> None:
    """D173: AdminFeatures' counts when it answers, the local ones when it does not, none (not a
    failed view) when even those cannot be read."""
    from core_app.services.segments import SegmentDeps, settings_with_counts
    from tests.unit.fakes import FakeCustomerStore, FakeRemoteCounts

    svc, _, _, guard = service(FakeProgramSettings(table={MERCHANT: SAVED}))
    store = FakeCustomerStore(counts={MERCHANT: {"loyal": 3}})
    remote = FakeRemoteCounts(counts={"champions": 41})
    deps = SegmentDeps(store, guard, remote)
    view = await settings_with_counts(svc, deps, caller(MERCHANT, VIEW), MERCHANT)
    assert view["version"] == 3
    assert view["segment_counts"]["source"] == "adminfeatures" and view["segment_counts"]["total"] == 41
    remote.counts = None  # AdminFeatures down or late
    view = await settings_with_counts(svc, deps, caller(MERCHANT, VIEW), MERCHANT)
    assert (view["segment_counts"]["source"], view["segment_counts"]["total"]) == ("local", 3)

    async def down(merchant_id: str) -> dict[str, int]:
        raise OSError("connection refused")

    store.segment_counts = down  # type: ignore[method-assign]
    view = await settings_with_counts(svc, deps, caller(MERCHANT, VIEW), MERCHANT)
    assert view["segment_counts"] is None and view["version"] == 3
    with pytest.raises(Forbidden):
        await settings_with_counts(svc, deps, caller(str(uuid.uuid4()), VIEW), MERCHANT)
