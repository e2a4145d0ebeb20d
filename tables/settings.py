"""The `program_settings` table: `merchant_id` -> settings as JSON (written by the settings use case)."""

from __future__ import annotations

from core_app.app import app

settings_table = app.Table(
    "program_settings",
    default=None,
    key_type=str,  # changelog keys and values are JSON
    partitions=app.conf.topic_partitions,
    help="Program settings by merchant_id",
)
