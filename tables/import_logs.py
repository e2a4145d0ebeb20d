"""The `import_logs` table: `import_id` -> import log as JSON, carrying `merchant_id`."""

from __future__ import annotations

import faust

from core_app.app import app

import_logs_table = app.Table(
    "import_logs",
    default=None,
    schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
    partitions=app.conf.topic_partitions,
    help="Customer import logs by import_id",
)
