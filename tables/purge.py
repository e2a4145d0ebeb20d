"""A purged merchant's table entries, dropped from one partition by the worker that owns it
(agents/table_purges.py; docs/decisions.md D129).

Each entry is deleted from RocksDB and a tombstone is queued for its changelog through the record
writer (tables/changelog.py), so standby replicas and a recovering worker drop it too, the sink
deletes its PostgreSQL row (D163), and compaction removes it from the topic. Synchronous, like every
table write: no other agent interleaves with it.
"""

from __future__ import annotations

from typing import Any

import orjson

from core_app.app import app
from tables.changelog import writer_for
from tables.customer_import_logs import import_logs_table
from tables.customers import customers_table, read_memo
from tables.program_settings import settings_table


def _db(table: Any, partition: int) -> Any:
    """The partition's RocksDB, None when this worker has not opened it."""
    dbs = getattr(table.data, "_dbs", None)
    return dbs.get(partition) if dbs is not None else None


def _customer_keys(partition: int, merchant_id: str) -> list[bytes]:
    db = _db(customers_table, partition)
    if db is None:
        return []
    prefix = orjson.dumps(f"{merchant_id}:")[:-1]  # '"<merchant_id>:' of every '"m:c"' key
    keys = []
    for key in db.keys(from_key=prefix):
        if not key.startswith(prefix):
            break
        keys.append(key)
    return keys


def _settings_keys(partition: int, merchant_id: str) -> list[bytes]:
    db = _db(settings_table, partition)
    key = orjson.dumps(merchant_id)
    return [key] if db is not None and db.get(key) is not None else []


def _names_merchant(value: bytes, merchant_id: str) -> bool:
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    return isinstance(decoded, dict) and decoded.get("merchant_id") == merchant_id


def _import_log_keys(partition: int, merchant_id: str) -> list[bytes]:
    """Import logs are keyed by import id alone: their value names the merchant. (The partition's
    database also holds Faust's own bookkeeping, such as its persisted offset: not logs.)"""
    db = _db(import_logs_table, partition)
    if db is None:
        return []
    prefix = b'"'  # every table key is a JSON string; Faust's offset key is not
    return [
        key
        for key, value in db.items(from_key=prefix)
        if key.startswith(prefix) and _names_merchant(value, merchant_id)
    ]


def drop_merchant(partition: int, merchant_id: str) -> dict[str, int]:
    """Delete the merchant's entries of every table in `partition`; the count per table."""
    writer = writer_for(app)
    found = {
        "customers": (customers_table, _customer_keys(partition, merchant_id)),
        "program_settings": (settings_table, _settings_keys(partition, merchant_id)),
        "import_logs": (import_logs_table, _import_log_keys(partition, merchant_id)),
    }
    for name, (table, keys) in found.items():
        for key in keys:
            if name == "customers":
                read_memo.forget(partition, orjson.loads(key))
            writer.delete(table, partition, key)
    return {name: len(keys) for name, (_, keys) in found.items()}
