"""`core.customer.commands`: API writes, applied by the agent that owns the customer's partition.

One writer per key: a create or update travels to the owner as a command, the owner changes its
table (and PostgreSQL where only PostgreSQL can decide: email uniqueness), produces the event, and
replies on the Redis channel the caller waits on. A replayed command is answered again, not re-applied.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg2.errors
from faust.types import EventT, StreamT

from agents.parking import wake
from agents.pipeline import now_iso, state_record
from agents.replies import run_and_reply
from core_app import metrics, topics
from core_app import stream_topics as faust_topics
from core_app.app import app
from core_app.domain.customer import CustomerState
from core_app.domain.errors import Conflict, NotFound
from core_app.domain.pii import sanitize_metadata
from core_app.domain.repair import merge_copies
from core_app.ops import product_events
from core_app.repository import change_email, fetch_customer, insert_customer
from core_app.retry import infra_retry
from core_app.runtime import get_runtime
from core_app.security.layer import get_security
from core_app.security.shredding import KeyShredded
from core_app.services.customers import customer_view
from tables.customers import read_customer, save_customer

REPAIR_CHANGES = ["RFM", "POINTS", "REFERRAL", "PROFILE"]  # a repair may change any part
_EVENT_NAMESPACE = uuid.UUID("0b7b3d1e-9a55-4a43-8c6a-3f1f5d0c2e77")


async def open_email(merchant_id: str, customer_id: str, sealed: str) -> str:
    """The plaintext, only for PostgreSQL (which stores it with pgcrypto); never kept or logged."""
    try:
        return await get_security().data_keys.decrypt_email(merchant_id, customer_id, sealed)
    except KeyShredded:
        raise Conflict("customer_id", "the customer was erased (GDPR) meanwhile") from None


async def create(command: dict[str, Any], event: EventT) -> CustomerState:
    merchant_id, customer_id = command["merchant_id"], command["customer_id"]
    existing = read_customer(command["key"], event)
    if existing is not None:  # a replayed command
        return existing
    plaintext = await open_email(merchant_id, customer_id, command["email"])
    try:
        state = await infra_retry()(
            insert_customer, get_runtime().pool, merchant_id, customer_id, plaintext, command["metadata"]
        )
    except psycopg2.errors.UniqueViolation:
        raise Conflict("email", "another customer of this merchant has this email") from None
    except psycopg2.errors.ForeignKeyViolation:
        raise NotFound("merchant", merchant_id) from None
    await infra_retry()(wake, get_runtime().pool, merchant_id, customer_id)  # its parked events (D103)
    state = state.advanced("profile", int(time.time() * 1000), now_iso(), email=command["email"])
    save_customer(state, event)
    record = {
        "event_id": str(uuid.uuid5(_EVENT_NAMESPACE, command["request_id"])),
        "customer_id": customer_id,
        "merchant_id": merchant_id,
        "email_hash": state.email_hash,
        "email": command["email"],
        "created_at": datetime.now(UTC),
    }
    value = await get_runtime().codec.encode(topics.CUSTOMER_CREATED, record)
    await faust_topics.customer_created.send(key=state.key, value=value)
    metrics.customers_created.labels(merchant_id).inc()
    product_events.capture("customer_created", merchant_id)
    return state


async def update(command: dict[str, Any], event: EventT) -> CustomerState:
    merchant_id, customer_id = command["merchant_id"], command["customer_id"]
    runtime = get_runtime()
    state = read_customer(command["key"], event) or await infra_retry()(
        fetch_customer, runtime.pool, merchant_id, customer_id
    )
    if state is None:
        raise NotFound("customer", customer_id)
    if state.redacted:
        raise Conflict("customer_id", "the customer was erased on a GDPR request")
    if state.applied_as_of.get("profile", 0) >= command["requested_at_ms"]:
        return state  # a replayed command
    changes: dict[str, Any] = {"metadata": sanitize_metadata({**state.metadata, **command["metadata"]})}
    if command.get("email"):
        plaintext = await open_email(merchant_id, customer_id, command["email"])
        try:
            _, email_hash = await infra_retry()(
                change_email, runtime.pool, merchant_id, customer_id, plaintext
            )
        except psycopg2.errors.UniqueViolation:
            raise Conflict("email", "another customer of this merchant has this email") from None
        changes |= {"email": command["email"], "email_hash": email_hash}
    # Re-read: the awaits above let event agents change this customer meanwhile.
    state = read_customer(command["key"], event) or state
    state = state.advanced("profile", command["requested_at_ms"], now_iso(), **changes)
    save_customer(state, event)
    value = await runtime.codec.encode(topics.CUSTOMER_UPDATED, state_record(state, ["PROFILE"]))
    await faust_topics.customer_updated.send(key=state.key, value=value)
    product_events.capture("customer_updated", merchant_id)
    return state


def holds(current: CustomerState, supplied: CustomerState) -> bool:
    """`current` already has everything `supplied` carries (a replayed repair)."""
    return current.version >= supplied.version and all(
        current.applied_as_of.get(source, 0) >= as_of for source, as_of in supplied.applied_as_of.items()
    )


async def repair(command: dict[str, Any], event: EventT) -> CustomerState:
    """`core repair`: merge a copy found outside the key's own partition (D102) into the owner's."""
    supplied = CustomerState.from_dict(command["state"])
    current = read_customer(command["key"], event)
    if current is not None and holds(current, supplied):
        return current
    state = merge_copies([copy for copy in (current, supplied) if copy is not None])
    save_customer(state, event)
    value = await get_runtime().codec.encode(topics.CUSTOMER_UPDATED, state_record(state, REPAIR_CHANGES))
    await faust_topics.customer_updated.send(key=state.key, value=value)
    return state


HANDLERS = {"create": create, "update": update, "repair": repair}


async def handle(event: EventT) -> None:
    command = json.loads(event.value)

    async def work() -> dict[str, Any]:
        return customer_view(await HANDLERS[command["kind"]](command, event))

    await run_and_reply(command, work())


@app.agent(faust_topics.customer_commands, name="customer-commands")
async def customer_commands_agent(stream: StreamT) -> None:
    async for event in stream.events():
        await handle(event)
