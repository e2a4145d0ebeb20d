"""The `program_settings` table: `merchant_id` -> settings as JSON (written by the settings agent)."""

from __future__ import annotations

from typing import Any

from faust.types import EventT

from core_app.app import app
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
