"""Dead letters: a bad event goes to `core.dlq` with where it came from and why. Nothing is dropped."""

from __future__ import annotations

import logging

from faust.types import EventT

from agents.topics import dead_letter as dead_letter_topic
from core_app import metrics

log = logging.getLogger(__name__)


async def send_to_dead_letter(event: EventT, kind: str, reason: str, source_topic: str | None = None) -> None:
    """`source_topic` names the original topic when the event came through the re-key topic."""
    message = event.message
    origin = source_topic or message.topic
    headers = [
        ("source_topic", origin.encode()),
        ("source_partition", str(message.partition).encode()),
        ("source_offset", str(message.offset).encode()),
        ("received_on", message.topic.encode()),
        ("error_kind", kind.encode()),
        ("reason", reason.encode()[:1000]),
    ]
    await dead_letter_topic.send(key=message.key, value=message.value, headers=headers)
    metrics.dead_letters.labels(origin, kind).inc()
    log.warning(
        "event dead-lettered",
        extra={
            "topic": origin,
            "partition": message.partition,
            "offset": message.offset,
            "kind": kind,
            "reason": reason,
        },
    )
