"""`points.updated` (Points) -> `metadata.points` (balance, lifetime earned, tier), sanitised."""

from __future__ import annotations

from faust.types import StreamT

from agents.pipeline import batch_handler, consume
from core_app import batch_delivery, topics
from core_app.app import app
from core_app.domain.events import PointsUpdated
from core_app.stream_topics import points_updated


@app.agent(points_updated, name="points-updated")
async def points_updated_agent(stream: StreamT) -> None:
    await consume(stream, topics.POINTS_UPDATED, PointsUpdated.parse, app.components)


# Its records come in batches past the agent's stream (D234); the agent serves when that is off.
batch_delivery.route(
    topics.POINTS_UPDATED, batch_handler(topics.POINTS_UPDATED, PointsUpdated.parse, lambda: app.components)
)
