"""`rfm.updated` (RFM Analytics) -> the customer's `rfm_score`; the newest score wins."""

from __future__ import annotations

from faust.types import StreamT

from agents.pipeline import batch_handler, consume
from core_app import batch_delivery, topics
from core_app.app import app
from core_app.domain.events import RfmUpdated
from core_app.stream_topics import rfm_updated


@app.agent(rfm_updated, name="rfm-updated")
async def rfm_updated_agent(stream: StreamT) -> None:
    await consume(stream, topics.RFM_UPDATED, RfmUpdated.parse, app.components)


# Its records come in batches past the agent's stream (D234); the agent serves when that is off.
batch_delivery.route(
    topics.RFM_UPDATED, batch_handler(topics.RFM_UPDATED, RfmUpdated.parse, lambda: app.components)
)
