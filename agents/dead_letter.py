"""Dead letters: a bad event goes to `core.dlq` with where it came from and why. Nothing is dropped."""

from __future__ import annotations

import logging

from faust.types import EventT

from core_app import metrics

log = logging.getLogger(__name__)


async def dead_letter(
    *,
    key: bytes | str | None,
    value: bytes | None,
    origin: str,
    partition: int,
    offset: int,
    kind: str,
    reason: str,
    received_on: str | None = None,
) -> None:
    """Send a record to `core.dlq` with where it came from and why; count and log it."""
    # Imported here: the standalone sink (`core sink`) uses the helpers below without a Faust app.
    from agents.topics import dead_letter as dead_letter_topic

    headers = dead_letter_headers(origin, partition, offset, kind, reason, received_on)
    await dead_letter_topic.send(key=key, value=value, headers=headers)
    dead_lettered(origin, partition, offset, kind, reason)


def dead_letter_headers(
    origin: str, partition: int, offset: int, kind: str, reason: str, received_on: str | None = None
) -> list[tuple[str, bytes]]:
    return [
        ("source_topic", origin.encode()),
        ("source_partition", str(partition).encode()),
        ("source_offset", str(offset).encode()),
        ("received_on", (received_on or origin).encode()),
        ("error_kind", kind.encode()),
        ("reason", reason.encode()[:1000]),
    ]


def dead_lettered(origin: str, partition: int, offset: int, kind: str, reason: str) -> None:
    """Count and log a record that went to `core.dlq`."""
    metrics.dead_letters.labels(origin, kind).inc()
    log.warning(
        "event dead-lettered",
        extra={"topic": origin, "partition": partition, "offset": offset, "kind": kind, "reason": reason},
    )


async def send_to_dead_letter(event: EventT, kind: str, reason: str, source_topic: str | None = None) -> None:
    """`source_topic` names the original topic when the event came through the re-key topic."""
    message = event.message
    await dead_letter(
        key=message.key,
        value=message.value,
        origin=source_topic or message.topic,
        partition=message.partition,
        offset=message.offset,
        kind=kind,
        reason=reason,
        received_on=message.topic,
    )
