"""The agents' edge of the one dead-letter path (core_app/dead_lettering.py): a consumed event,
as its producer sent it, to `core.dlq` through the worker's `DeadLetters`."""

from __future__ import annotations

from faust.types import EventT

from core_app.app import app
from core_app.dead_lettering import failed_message
from core_app.services.ports import DeadLetters


async def dead_letter_event(
    dead_letters: DeadLetters, event: EventT, kind: str, reason: str, source_topic: str | None = None
) -> None:
    """`source_topic` names the original topic when the event came through the re-key topic."""
    await dead_letters.dead_letter(failed_message(event.message, source_topic), kind, reason)


async def send_to_dead_letter(event: EventT, kind: str, reason: str, source_topic: str | None = None) -> None:
    """For an agent body: the worker's dead letters, read at the agent's edge."""
    await dead_letter_event(app.components.dead_letters, event, kind, reason, source_topic)
