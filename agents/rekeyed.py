"""`core.rekeyed`: consumed events that arrived keyed some other way, now keyed by customer.

The original topic travels in the `source_topic` header and picks the parser.
"""

from __future__ import annotations

from collections import defaultdict

from faust.types import EventT, StreamT

from agents.dead_letter import send_to_dead_letter
from agents.pipeline import BATCH_MAX, BATCH_WITHIN, Parser, process_batch
from core_app import topics
from core_app.app import app
from core_app.domain.events import GdprRedactionRequested, PointsUpdated, ReferralCreated, RfmUpdated
from core_app.stream_topics import rekeyed

PARSERS: dict[str, Parser] = {
    topics.RFM_UPDATED: RfmUpdated.parse,
    topics.POINTS_UPDATED: PointsUpdated.parse,
    topics.REFERRAL_CREATED: ReferralCreated.parse,
    topics.GDPR_REQUEST_CREATED: GdprRedactionRequested.parse,
}


def source_topic(event: EventT) -> str | None:
    for name, value in event.headers.items() if isinstance(event.headers, dict) else event.headers:
        if name == "source_topic":
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


@app.agent(rekeyed, name="rekeyed")
async def rekeyed_agent(stream: StreamT) -> None:
    async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
        by_topic: dict[str, list[EventT]] = defaultdict(list)
        for event in batch:
            origin = source_topic(event)
            if origin in PARSERS:
                by_topic[origin].append(event)
            else:
                await send_to_dead_letter(event, "unknown_source", f"source_topic header is {origin!r}")
        for origin, events in by_topic.items():
            await process_batch(events, origin, PARSERS[origin])
