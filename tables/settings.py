"""The `program_settings` table: `merchant_id` -> settings as JSON (written by the settings use case)."""

from __future__ import annotations

from core_app.app import app
from tables.rocksdb import rocksdb_options

settings_table = app.Table(
    "program_settings",
    default=None,
    key_type=str,  # changelog keys and values are JSON
    options=rocksdb_options(app.core_settings),
    partitions=app.conf.topic_partitions,
    help="Program settings by merchant_id",
)
