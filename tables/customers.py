"""The `customers` table: `{merchant_id}:{customer_id}` -> CustomerState as JSON.

Tansu (in `core dev`) keeps topics in memory, so a table can start empty while PostgreSQL holds the
truth: a key missing from the table is loaded from PostgreSQL on first touch.
"""

from __future__ import annotations

import logging

import faust
import psycopg2
from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from core_app.app import app
from core_app.domain.customer import CustomerState, customer_key
from core_app.repository import fetch_customer
from core_app.runtime import get_runtime

log = logging.getLogger(__name__)

# While PostgreSQL is away the agent waits (and its partition lags) rather than skipping the event.
_db_retry = AsyncRetrying(
    retry=retry_if_exception_type((psycopg2.OperationalError, OSError, TimeoutError)),
    wait=wait_exponential_jitter(initial=0.2, max=10),
    before_sleep=before_sleep_log(log, logging.WARNING),
    reraise=True,
)

customers_table = app.Table(
    "customers",
    default=None,
    schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
    partitions=app.conf.topic_partitions,
)


def local_customer(merchant_id: str, customer_id: str) -> CustomerState | None:
    """The table's value if this worker holds the key's partition (active or standby)."""
    value = customers_table.get(customer_key(merchant_id, customer_id))
    return CustomerState.from_dict(value) if value is not None else None


async def customer_for_write(merchant_id: str, customer_id: str) -> CustomerState | None:
    """Current state for an agent about to change it: the table, else PostgreSQL (first touch)."""
    state = local_customer(merchant_id, customer_id)
    if state is None:
        pool = get_runtime().pool
        state = await _db_retry.copy()(fetch_customer, pool, merchant_id, customer_id)
    return state


def save_customer(state: CustomerState) -> None:
    customers_table[state.key] = state.to_dict()
