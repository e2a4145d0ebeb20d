"""`core.customer.commands`: API writes, applied by the agent that owns the customer's partition.

One writer per key: a create or update travels to the owner as a command, the owner changes its
table (and PostgreSQL where only PostgreSQL can decide: email uniqueness), produces the event, and
replies on the Redis channel the caller waits on. A replayed command is answered again, not re-applied.

The handlers take their collaborators explicitly (`CommandDeps`); only the agent at the bottom reads
the worker's components, once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from faust.types import EventT, StreamT

from agents.parking import wake
from agents.pipeline import now_iso, state_record
from agents.replies import ReplyChannel, run_and_reply
from core_app import log_context, metrics, topics, tracing
from core_app import stream_topics as faust_topics
from core_app.app import app
from core_app.components import Components
from core_app.domain.customer import CustomerState
from core_app.domain.customer_view import customer_view
from core_app.domain.errors import Conflict, NotFound
from core_app.domain.pii import sanitize_metadata
from core_app.domain.repair import merge_copies
from core_app.domain.timeline import created_entry, repaired_entry, updated_entry
from core_app.ops import product_events
from core_app.retry import infra_retry
from core_app.security.shredding import KeyShredded
from core_app.services.ports import CustomerStore, CustomerTable, DataKeys, EventPublisher, RecordCodec
from tables.customers import FaustCustomerTable

REPAIR_CHANGES = ["RFM", "POINTS", "REFERRAL", "PROFILE"]  # a repair may change any part
_EVENT_NAMESPACE = uuid.UUID("0b7b3d1e-9a55-4a43-8c6a-3f1f5d0c2e77")


@dataclass(frozen=True)
class CommandDeps:
    store: CustomerStore
    data_keys: DataKeys
    publisher: EventPublisher
    codec: RecordCodec
    table: CustomerTable
    wake: Callable[[str, str], Awaitable[None]]  # a new customer's parked events are due (D103)
    replies: ReplyChannel


async def open_email(deps: CommandDeps, merchant_id: str, customer_id: str, sealed: str) -> str:
    """The plaintext, only for PostgreSQL (which stores it with pgcrypto); never kept or logged."""
    try:
        return await deps.data_keys.decrypt_email(merchant_id, customer_id, sealed)
    except KeyShredded:
        raise Conflict("customer_id", "the customer was erased (GDPR) meanwhile") from None


async def create(deps: CommandDeps, command: dict[str, Any], event: EventT) -> CustomerState:
    merchant_id, customer_id = command["merchant_id"], command["customer_id"]
    existing = deps.table.read(command["key"], event)
    if existing is not None:  # a replayed command
        return existing
    plaintext = await open_email(deps, merchant_id, customer_id, command["email"])
    state: CustomerState = await infra_retry()(
        deps.store.insert, merchant_id, customer_id, plaintext, command["metadata"]
    )
    await deps.wake(merchant_id, customer_id)
    now_ms = int(time.time() * 1000)
    state = state.advanced("profile", now_ms, now_iso(), email=command["email"])
    transport, actor = command.get("transport", "api"), command.get("actor", "unknown")
    deps.table.save(state, event, [created_entry(state, now_ms, transport, actor)])
    record = {
        "event_id": str(uuid.uuid5(_EVENT_NAMESPACE, command["request_id"])),
        "customer_id": customer_id,
        "merchant_id": merchant_id,
        "email_hash": state.email_hash,
        "email": command["email"],
        "created_at": datetime.now(UTC),
    }
    value = await deps.codec.encode(topics.CUSTOMER_CREATED, record)
    await deps.publisher.publish(topics.CUSTOMER_CREATED, state.key, value)
    metrics.customers_created.labels(merchant_id).inc()
    product_events.capture("customer_created", merchant_id)
    return state


async def update(deps: CommandDeps, command: dict[str, Any], event: EventT) -> CustomerState:
    merchant_id, customer_id = command["merchant_id"], command["customer_id"]
    state = deps.table.read(command["key"], event) or await infra_retry()(
        deps.store.fetch, merchant_id, customer_id
    )
    if state is None:
        raise NotFound("customer", customer_id)
    if state.redacted:
        raise Conflict("customer_id", "the customer was erased on a GDPR request")
    if state.applied_as_of.get("profile", 0) >= command["requested_at_ms"]:
        return state  # a replayed command
    given = sanitize_metadata(command["metadata"])
    changes: dict[str, Any] = {"metadata": sanitize_metadata({**state.metadata, **command["metadata"]})}
    if command.get("email"):
        plaintext = await open_email(deps, merchant_id, customer_id, command["email"])
        email_hash: str = await infra_retry()(deps.store.change_email, merchant_id, customer_id, plaintext)
        changes |= {"email": command["email"], "email_hash": email_hash}
    # Re-read: the awaits above let event agents change this customer meanwhile.
    state = deps.table.read(command["key"], event) or state
    state = state.advanced("profile", command["requested_at_ms"], now_iso(), **changes)
    transport, actor = command.get("transport", "api"), command.get("actor", "unknown")
    keys, email_changed = sorted(given), bool(command.get("email"))
    made = updated_entry(state, command["requested_at_ms"], transport, actor, keys, email_changed)
    deps.table.save(state, event, [made])
    value = await deps.codec.encode(topics.CUSTOMER_UPDATED, state_record(state, ["PROFILE"]))
    await deps.publisher.publish(topics.CUSTOMER_UPDATED, state.key, value)
    product_events.capture("customer_updated", merchant_id)
    return state


def holds(current: CustomerState, supplied: CustomerState) -> bool:
    """`current` already has everything `supplied` carries (a replayed repair)."""
    return current.version >= supplied.version and all(
        current.applied_as_of.get(source, 0) >= as_of for source, as_of in supplied.applied_as_of.items()
    )


async def repair(deps: CommandDeps, command: dict[str, Any], event: EventT) -> CustomerState:
    """`core repair`: merge a copy found outside the key's own partition (D102) into the owner's."""
    supplied = CustomerState.from_dict(command["state"])
    current = deps.table.read(command["key"], event)
    if current is not None and holds(current, supplied):
        return current
    state = merge_copies([copy for copy in (current, supplied) if copy is not None])
    deps.table.save(state, event, [repaired_entry(state, int(time.time() * 1000))])
    value = await deps.codec.encode(topics.CUSTOMER_UPDATED, state_record(state, REPAIR_CHANGES))
    await deps.publisher.publish(topics.CUSTOMER_UPDATED, state.key, value)
    return state


HANDLERS = {"create": create, "update": update, "repair": repair}


async def handle(deps: CommandDeps, event: EventT) -> None:
    command = json.loads(event.value)

    async def work() -> dict[str, Any]:
        return customer_view(await HANDLERS[command["kind"]](deps, command, event))

    bound = log_context.bind(merchant_id=command.get("merchant_id"))  # this command's lines (D149)
    try:
        await run_and_reply(deps.replies, command, work())
    finally:
        log_context.unbind(bound)


def command_deps(components: Components) -> CommandDeps:
    """The handlers' collaborators, from the worker's components (opened before events flow)."""
    runtime = components.runtime
    pool = runtime.pool

    async def wake_parked(merchant_id: str, customer_id: str) -> None:
        await infra_retry()(wake, pool, merchant_id, customer_id)

    return CommandDeps(
        components.customer_store,
        components.security.data_keys,
        components.publisher,
        runtime.codec,
        FaustCustomerTable(),
        wake_parked,
        runtime.redis,
    )


@app.agent(faust_topics.customer_commands, name="customer-commands")
async def customer_commands_agent(stream: StreamT) -> None:
    deps: CommandDeps | None = None
    async for event in stream.events():
        deps = deps or command_deps(app.components)
        with tracing.batch_span(topics.CUSTOMER_COMMANDS, [event.headers]):  # the request's trace goes on
            await handle(deps, event)
