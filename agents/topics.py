"""Faust topic objects. Payloads stay raw bytes: agents decode them, so bad input is dead-lettered
instead of failing inside Faust's deserializer."""

from __future__ import annotations

from core_app import topics
from core_app.app import app


def _raw_topic(name: str) -> object:
    return app.topic(
        name,
        key_type=str,
        key_serializer="raw",
        value_serializer="raw",
        partitions=app.conf.topic_partitions,
    )


rfm_updated = _raw_topic(topics.RFM_UPDATED)
dead_letter = _raw_topic(topics.DEAD_LETTER)
