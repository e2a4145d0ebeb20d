"""The `program_settings` table: `merchant_id` -> settings as JSON (written by the settings agent)."""

from __future__ import annotations

from typing import Any

from faust.types import EventT

from core_app.app import app
from core_app.owner_client import owner_get
from core_app.routing import owner_url, same_worker
from core_app.runtime import Runtime
from tables.context import processing
from tables.rocksdb import rocksdb_options

settings_table = app.Table(
    "program_settings",
    default=None,
    key_type=str,  # changelog keys and values are JSON
    options=rocksdb_options(app.core_settings),
    partitions=app.conf.topic_partitions,
    help="Program settings by merchant_id",
)


def local_settings(merchant_id: str) -> dict[str, Any] | None:
    value = settings_table.get(merchant_id)
    return dict(value) if value is not None else None


def read_settings(merchant_id: str, event: EventT) -> dict[str, Any] | None:
    with processing(event):
        value = settings_table.get(merchant_id)
    return dict(value) if value is not None else None


def save_settings(settings: dict[str, Any], event: EventT) -> None:
    with processing(event):
        settings_table[settings["merchant_id"]] = settings


class OwnerReads:
    """ProgramSettingsOwner: this worker's table when it owns the merchant's key, else the owner's,
    over the internal route (None when it has none or does not answer in time)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def read(self, merchant_id: str) -> tuple[dict[str, Any] | None, str]:
        owner = owner_url(app, "program_settings", merchant_id)
        if owner is None or same_worker(owner, self.runtime.settings.web_url):
            return local_settings(merchant_id), "table"
        return await owner_get(self.runtime, owner, f"/internal/v1/settings/{merchant_id}"), "owner"


class EventTable:
    """The table as the owner agent sees it while it processes `event` (tables/context.py)."""

    def __init__(self, event: EventT) -> None:
        self.event = event

    def read(self, merchant_id: str) -> dict[str, Any] | None:
        return read_settings(merchant_id, self.event)

    def save(self, settings: dict[str, Any]) -> None:
        save_settings(settings, self.event)
