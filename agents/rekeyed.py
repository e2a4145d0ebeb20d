"""`core.rekeyed`: consumed events that arrived keyed some other way, now keyed by customer.

The original topic travels in the `source_topic` header and picks the parser.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from faust.types import EventT, StreamT

from agents.dead_letter import dead_letter_event
from agents.pipeline import BATCH_MAX, BATCH_WITHIN, Parser, PipelineDeps, process_batch
from agents.take import take_events
from core_app import batch_delivery, topics
from core_app.app import app
from core_app.domain.events import PointsUpdated, ReferralCreated, RfmUpdated, parse_gdpr_request
from core_app.stream_topics import rekeyed

PARSERS: dict[str, Parser] = {
    topics.RFM_UPDATED: RfmUpdated.parse,
    topics.POINTS_UPDATED: PointsUpdated.parse,
    topics.REFERRAL_CREATED: ReferralCreated.parse,
    topics.GDPR_REQUEST_CREATED: parse_gdpr_request,
}


def source_topic(event: EventT) -> str | None:
    for name, value in event.headers.items() if isinstance(event.headers, dict) else event.headers:
        if name == "source_topic":
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


async def process_rekeyed(deps: PipelineDeps, batch: Sequence[EventT]) -> None:
    """Each event through its original topic's parser; one naming no topic we consume is dead-lettered."""
    by_topic: dict[str, list[EventT]] = defaultdict(list)
    for event in batch:
        origin = source_topic(event)
        if origin in PARSERS:
            by_topic[origin].append(event)
        else:
            reason = f"source_topic header is {origin!r}"
            await dead_letter_event(deps.dead_letters, event, "unknown_source", reason)
    for origin, events in by_topic.items():
        await process_batch(deps, events, origin, PARSERS[origin])


@app.agent(rekeyed, name="rekeyed")
async def rekeyed_agent(stream: StreamT) -> None:
    async for batch in take_events(stream, BATCH_MAX, BATCH_WITHIN):
        await process_rekeyed(PipelineDeps.of(app.components), batch)


async def handle_rekeyed(batch: list[batch_delivery.BatchEvent]) -> None:
    await process_rekeyed(PipelineDeps.of(app.components), batch)  # type: ignore[arg-type]


# Its records come in batches past the agent's stream (D234); the agent serves when that is off.
batch_delivery.route(topics.REKEYED, handle_rekeyed)
