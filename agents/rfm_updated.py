"""`rfm.updated` -> customers table: sets `rfm_score`, newest event wins."""

from __future__ import annotations

from datetime import UTC, datetime

from faust.types import EventT, StreamT

from agents.dead_letter import send_to_dead_letter
from agents.topics import rfm_updated
from core_app import metrics, topics
from core_app.app import app
from core_app.domain.customer import apply_rfm
from core_app.domain.errors import ValidationFailed
from core_app.domain.events import RfmUpdated
from core_app.events.codec import DecodeError
from core_app.runtime import get_runtime
from tables.customers import customer_for_write, save_customer

TOPIC = topics.RFM_UPDATED


async def handle(event: EventT) -> None:
    try:
        update = RfmUpdated.parse(await get_runtime().codec.decode(event.value))
    except DecodeError as exc:
        await send_to_dead_letter(event, exc.kind, exc.reason)
        return
    except ValidationFailed as exc:
        await send_to_dead_letter(event, "invalid", str(exc))
        return
    if event.key is not None and event.key != update.key:
        await send_to_dead_letter(event, "key_mismatch", f"key {event.key!r} != {update.key!r}")
        return
    state = await customer_for_write(update.merchant_id, update.customer_id)
    if state is None:
        await send_to_dead_letter(event, "unknown_customer", f"no customer {update.key}")
        return
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    new_state = apply_rfm(state, update.score, update.occurred_at_ms, now)
    if new_state is None:
        metrics.events_skipped.labels(TOPIC).inc()
        return
    save_customer(new_state)
    metrics.events_processed.labels(TOPIC).inc()


@app.agent(rfm_updated, name="rfm-updated")
async def rfm_updated_agent(stream: StreamT) -> None:
    async for event in stream.events():
        try:
            await handle(event)
        except Exception:
            metrics.events_failed.labels(TOPIC).inc()
            raise
