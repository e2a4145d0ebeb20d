"""Dead letters: a bad event goes to `core.dlq` with where it came from and why. Nothing is dropped.

A dead letter is the original record: its key, its value, and the producer's own headers under their
own names, beside ours (`source_topic`, `source_partition`, `source_offset`, `received_on`,
`error_kind`, `reason`, and `source_timestamp`, the original record's timestamp in epoch ms). A
producer header whose name is one of ours is kept as `original.<name>`. Events re-keyed through
`core.rekeyed` carry their original key, timestamp and headers there (`rekey_headers`), so their
dead letters are the producer's record too (docs/decisions.md D150).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from faust.types import EventT

from core_app import metrics
from core_app.topics import REKEYED

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
DLQ_HEADERS = frozenset(
    {
        "source_topic",
        "source_partition",
        "source_offset",
        "received_on",
        "error_kind",
        "reason",
        "source_timestamp",
    }
)
# What a re-keyed record carries besides the producer's headers.
REKEY_HEADERS = frozenset({"source_topic", "source_key", "source_timestamp"})
ORIGINAL_PREFIX = "original."


def header_items(headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> Headers:
    """Headers as (name, bytes) pairs, from a list of pairs or a mapping (Faust gives either)."""
    if not headers:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [
        (str(name), value if isinstance(value, bytes) else b"" if value is None else str(value).encode())
        for name, value in pairs
    ]


def producer_headers(headers: Headers, reserved: frozenset[str]) -> Headers:
    """The producer's headers under their own names; one named like ours as `original.<name>`."""
    return [(f"{ORIGINAL_PREFIX}{name}" if name in reserved else name, value) for name, value in headers]


def rekey_headers(source_topic: str, key: bytes | None, timestamp_ms: int | None, headers: Any) -> Headers:
    """Headers of a record sent to `core.rekeyed`: where it came from, its original key and
    timestamp, and the producer's headers."""
    ours = [("source_topic", source_topic.encode())]
    if key is not None:
        ours.append(("source_key", key))
    if timestamp_ms is not None:
        ours.append(("source_timestamp", str(timestamp_ms).encode()))
    return ours + producer_headers(header_items(headers), REKEY_HEADERS)


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
    headers: Any = None,
    timestamp_ms: int | None = None,
) -> None:
    """Send a record to `core.dlq` with where it came from and why; count and log it."""
    # Imported here: the standalone sink (`core sink`) uses the helpers below without a Faust app.
    from core_app.stream_topics import dead_letter as dead_letter_topic

    all_headers = dead_letter_headers(
        origin, partition, offset, kind, reason, received_on, headers=headers, timestamp_ms=timestamp_ms
    )
    await dead_letter_topic.send(key=key, value=value, headers=all_headers)
    dead_lettered(origin, partition, offset, kind, reason)


def dead_letter_headers(
    origin: str,
    partition: int,
    offset: int,
    kind: str,
    reason: str,
    received_on: str | None = None,
    *,
    headers: Any = None,
    timestamp_ms: int | None = None,
) -> Headers:
    """Ours first, then the producer's (`headers`, as the original record had them)."""
    ours = [
        ("source_topic", origin.encode()),
        ("source_partition", str(partition).encode()),
        ("source_offset", str(offset).encode()),
        ("received_on", (received_on or origin).encode()),
        ("error_kind", kind.encode()),
        ("reason", reason.encode()[:1000]),
    ]
    if timestamp_ms is not None:
        ours.append(("source_timestamp", str(timestamp_ms).encode()))
    return ours + producer_headers(header_items(headers), DLQ_HEADERS)


def dead_lettered(origin: str, partition: int, offset: int, kind: str, reason: str) -> None:
    """Count and log a record that went to `core.dlq`."""
    metrics.dead_letters.labels(origin, kind).inc()
    log.warning(
        "event dead-lettered",
        extra={"topic": origin, "partition": partition, "offset": offset, "kind": kind, "reason": reason},
    )


def original_record(message: Any) -> tuple[bytes | None, int | None, Headers]:
    """(key, timestamp in ms, producer headers) of the record as its producer sent it: for one that
    came through `core.rekeyed`, from the headers the re-keying put there."""
    headers = header_items(message.headers)
    timestamp_ms = int(message.timestamp * 1000) if message.timestamp is not None else None
    if message.topic != REKEYED:
        return message.key, timestamp_ms, headers
    bookkeeping = {name: value for name, value in headers if name in REKEY_HEADERS}
    if "source_timestamp" in bookkeeping:
        timestamp_ms = int(bookkeeping["source_timestamp"])
    rest = [(name, value) for name, value in headers if name not in REKEY_HEADERS]
    return bookkeeping.get("source_key"), timestamp_ms, rest


async def send_to_dead_letter(event: EventT, kind: str, reason: str, source_topic: str | None = None) -> None:
    """`source_topic` names the original topic when the event came through the re-key topic."""
    message = event.message
    key, timestamp_ms, headers = original_record(message)
    await dead_letter(
        key=key,
        value=message.value,
        origin=source_topic or message.topic,
        partition=message.partition,
        offset=message.offset,
        kind=kind,
        reason=reason,
        received_on=message.topic,
        headers=headers,
        timestamp_ms=timestamp_ms,
    )
