"""The `customers` table: `{merchant_id}:{customer_id}` -> CustomerState as JSON.

Tansu (in `core dev`) keeps topics in memory, so a table can start empty while PostgreSQL holds the
truth: a key missing from the table is loaded from PostgreSQL on first touch.
"""

from __future__ import annotations

from typing import Any

import aiopg
from faust.types import EventT

from core_app.app import app
from core_app.domain.customer import CustomerState, customer_key
from core_app.domain.customer_view import stored_view
from core_app.repository import fetch_customers
from core_app.retry import infra_retry
from core_app.routing import key_partition
from tables.changelog import writer_for
from tables.read_memo import ReadMemo
from tables.rocksdb import read_in_partition, rocksdb_options

customers_table = app.Table(
    "customers",
    default=None,
    key_type=str,  # changelog keys and values are JSON
    options=rocksdb_options(app.core_settings),
    partitions=app.conf.topic_partitions,
    help="Customer state by {merchant_id}:{customer_id}",
)


read_memo = ReadMemo(app, app.core_settings.table_read_memo_keys)


def stored_customer(
    merchant_id: str, customer_id: str, partition: int | None = None, *, active: bool = False
) -> dict | None:
    """The table's stored value (CustomerState.to_dict) if this worker holds the key's partition.

    Only the key's own partition is read, once: every write lands there (the key's own event is
    current, docs/decisions.md D19, D29). Faust's `table.get` would probe every partition this
    worker holds and read the key twice (`in`, then the get). `active`: this worker holds the
    partition as active, so the value may be remembered (tables/read_memo.py). Read-only.
    """
    key = customer_key(merchant_id, customer_id)
    if partition is None:
        partition = key_partition(key, customers_table.partitions or app.conf.topic_partitions)
    value = read_memo.get(partition, key)
    if value is None:
        value = read_in_partition(customers_table, key, partition)
        if active and value is not None:
            read_memo.remember(partition, key, value)
    return value  # type: ignore[no-any-return]


def local_view(
    merchant_id: str, customer_id: str, partition: int | None = None, *, active: bool = False
) -> dict[str, Any] | None:
    """This worker's table value as the public view (for reads, and the internal owner route)."""
    stored = stored_customer(merchant_id, customer_id, partition, active=active)
    return stored_view(stored) if stored is not None else None


def read_customer(key: str, event: EventT) -> CustomerState | None:
    """The key's state in the partition of `event` (the key's own event), as Faust would read it."""
    value = writer_for(app).read(customers_table, event.message.partition, key)
    return CustomerState.from_dict(value) if value is not None else None


def read_customers(last_event_by_key: dict[str, EventT]) -> dict[str, CustomerState | None]:
    """The table's state of each key (None: not in the table), read through the key's own event."""
    return {key: read_customer(key, event) for key, event in last_event_by_key.items()}


def save_customer(state: CustomerState, event: EventT, timeline: list[dict[str, Any]] | None = None) -> None:
    """Write `state` as part of processing `event` (the key's own event, hence its partition).

    Synchronous like `table[key] = value`, through the lean path of tables/changelog.py: the RocksDB
    write now, the changelog record queued in write order and flushed before offsets commit.
    `timeline`: the entries of the changes this write holds (core_app/domain/timeline.py); they ride
    in the same changelog record, so the sink stores them with the row (D170). CustomerState ignores
    them when the value is read back.
    """
    partition = event.message.partition
    read_memo.forget(partition, state.key)
    value = state.to_dict()
    if timeline:
        value["timeline"] = timeline
    writer_for(app).write(customers_table, partition, state.key, value)


async def fetch_missing(pool: aiopg.Pool, keys: list[str]) -> dict[str, CustomerState]:
    """First touch: customers absent from the table, read from PostgreSQL in one query."""
    if not keys:
        return {}
    pairs = [tuple(key.split(":", 1)) for key in keys]
    return await infra_retry()(fetch_customers, pool, pairs)


async def load_missing(pool: aiopg.Pool, last_event_by_key: dict[str, EventT]) -> dict[str, CustomerState]:
    """First touch for callers that handle one batch of keys: the absent ones, from PostgreSQL."""
    states = read_customers(last_event_by_key)
    return await fetch_missing(pool, [key for key, state in states.items() if state is None])


class FaustCustomerTable:
    """The CustomerTable port (core_app/services/ports.py) on this module's table."""

    def read(self, key: str, event: EventT) -> CustomerState | None:
        return read_customer(key, event)

    def save(self, state: CustomerState, event: EventT, timeline: list[dict[str, Any]] | None = None) -> None:
        save_customer(state, event, timeline)
