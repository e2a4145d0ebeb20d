"""`points.updated` (Points) -> `metadata.points` (balance, lifetime earned, tier), sanitised."""

from __future__ import annotations

from faust.types import StreamT

from agents.pipeline import consume
from core_app import topics
from core_app.app import app
from core_app.domain.events import PointsUpdated
from core_app.stream_topics import points_updated


@app.agent(points_updated, name="points-updated")
async def points_updated_agent(stream: StreamT) -> None:
    await consume(stream, topics.POINTS_UPDATED, PointsUpdated.parse, app.components)
