"""The `customers` table: `{merchant_id}:{customer_id}` -> CustomerState as JSON.

Tansu (in `core dev`) keeps topics in memory, so a table can start empty while PostgreSQL holds the
truth: a key missing from the table is loaded from PostgreSQL on first touch.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

from faust.streams import _current_event
from faust.types import EventT

from core_app.app import app
from core_app.domain.customer import CustomerState, customer_key
from core_app.repository import fetch_customers
from core_app.retry import infra_retry
from core_app.runtime import get_runtime

customers_table = app.Table(
    "customers",
    default=None,
    key_type=str,  # changelog keys and values are JSON
    partitions=app.conf.topic_partitions,
    help="Customer state by {merchant_id}:{customer_id}",
)


def local_customer(merchant_id: str, customer_id: str) -> CustomerState | None:
    """The table's value if this worker holds the key's partition (active or standby)."""
    return local_customer_by_key(customer_key(merchant_id, customer_id))


def local_customer_by_key(key: str) -> CustomerState | None:
    value = customers_table.get(key)
    return CustomerState.from_dict(value) if value is not None else None


async def load_missing(keys: Iterable[str]) -> dict[str, CustomerState]:
    """First touch: customers absent from the table, read from PostgreSQL in one query."""
    missing = [key for key in keys if customers_table.get(key) is None]
    if not missing:
        return {}
    pairs = [tuple(key.split(":", 1)) for key in missing]
    return await infra_retry()(fetch_customers, get_runtime().pool, pairs)


def save_customer(state: CustomerState, event: EventT) -> None:
    """Write `state` as part of processing `event`.

    Faust's RocksDB store and changelog pick the partition from the current event. Batched
    processing runs outside a per-event context, so the event that produced the state is made
    current for the write: the key's own event, hence the key's own partition.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        customers_table[state.key] = state.to_dict()
    finally:
        _current_event.reset(token)
