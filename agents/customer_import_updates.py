"""`core.import.commands`: imported rows for customers that already exist, applied by their owner.

An import inserts new customers straight into PostgreSQL (they are in no table yet), but a customer
that exists may be in the `customers` table, which the read path serves first. So its update goes to
the worker that owns its partition, like any other write (one writer per key): the import groups a
batch's existing customers by partition and sends one command per partition (at most
UPDATE_COMMAND_MAX customers), to that partition explicitly. The agent applies them in one
synchronous section, queues `customer.updated` and confirms on the import's Redis channel.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from faust.types import EventT, StreamT

from agents.dead_letter import send_to_dead_letter
from agents.pipeline import now_iso, state_record
from core_app import stream_topics as faust_topics
from core_app import topics
from core_app.app import app
from core_app.customer_import import owner_apply
from core_app.domain.customer import CustomerState, customer_key
from core_app.retry import infra_retry
from core_app.runtime import Runtime
from tables.changelog import writer_for
from tables.customers import load_missing, read_customer, save_customer

log = logging.getLogger(__name__)


def apply_updates(
    command: dict[str, Any], event: EventT, fetched: dict[str, CustomerState]
) -> tuple[list[CustomerState], int, list[dict[str, Any]]]:
    """The command applied in the partition of `event`: the table first, then what PostgreSQL had."""

    def read(key: str) -> CustomerState | None:
        return read_customer(key, event) or fetched.get(key)

    def save(state: CustomerState, timeline: list[dict[str, Any]]) -> None:
        save_customer(state, event, timeline)

    return owner_apply.apply_updates(command, read, save, now_iso())


async def handle(event: EventT, runtime: Runtime) -> None:
    command = json.loads(event.value)
    merchant_id = command["merchant_id"]
    keys = [customer_key(merchant_id, item["customer_id"]) for item in command["customers"]]
    fetched = await load_missing(runtime.pool, dict.fromkeys(keys, event))
    changed, updated, errors = apply_updates(command, event, fetched)
    # customer.updated through the record writer, queued after each key's table write as the ingest
    # pipeline does (D242): one Faust send per customer cost more than the rest of the update.
    writer = writer_for(app)
    for state in changed:
        value = await runtime.codec.encode(topics.CUSTOMER_UPDATED, state_record(state, ["PROFILE"]))
        writer.produce(topics.CUSTOMER_UPDATED, state.key.encode(), value)
    await writer.wait_until_ebb()  # back-pressure, as in the pipeline
    reply = json.dumps(owner_apply.confirmation(command, updated, errors))

    async def confirm() -> None:
        await runtime.redis.publish(command["reply_to"], reply)

    await infra_retry()(confirm)


@app.agent(faust_topics.import_commands, name="import-updates")
async def import_updates_agent(stream: StreamT) -> None:
    async for event in stream.events():
        try:
            await handle(event, app.components.runtime)
        except Exception as exc:
            log.exception("import update command failed; dead-lettering it")
            await send_to_dead_letter(event, "processing_error", repr(exc))
