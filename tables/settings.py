"""The `program_settings` table: `merchant_id` -> settings as JSON (written by the settings use case)."""

from __future__ import annotations

import faust

from core_app.app import app

settings_table = app.Table(
    "program_settings",
    default=None,
    schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
    partitions=app.conf.topic_partitions,
    help="Program settings by merchant_id",
)
