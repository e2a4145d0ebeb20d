"""The `import_logs` table: `import_id` -> import log as JSON, carrying `merchant_id`."""

from __future__ import annotations

from core_app.app import app
from tables.rocksdb import rocksdb_options

import_logs_table = app.Table(
    "import_logs",
    default=None,
    key_type=str,  # changelog keys and values are JSON
    options=rocksdb_options(app.core_settings),
    partitions=app.conf.topic_partitions,
    help="Customer import logs by import_id",
)
