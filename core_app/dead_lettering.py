"""The one dead-letter path (an adapter of the `DeadLetters` port, core_app/services/ports.py).

Agents, the parked-event retrier and the PostgreSQL sink all send a record they give up on to
`core.dlq` through `DeadLetterProducer`: the record's key and value as consumed, with headers saying
where it came from and why, counted and logged. Only the transport differs: a worker sends on its
Faust producer (`FaustSend`), `core sink` on its own aiokafka producer (`KafkaDeadLetters`).

Headers: the producer's own headers travel on under their own names, beside ours (`source_topic`,
`source_partition`, `source_offset`, `received_on`, `error_kind`, `reason`, and `source_timestamp`,
the original record's timestamp in epoch ms). A producer header whose name is one of ours is kept as
`original.<name>`. Events re-keyed through `core.rekeyed` carry their original key, timestamp and
headers there (`rekey_headers`), so their dead letters are the producer's record too (D150).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer

from core_app import metrics
from core_app.kafka_security import client_options
from core_app.services.ports import FailedRecord
from core_app.settings import Settings
from core_app.topics import DEAD_LETTER, REKEYED

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

# Sends (key, value, headers) to `core.dlq` and returns once the transport took it.
Send = Callable[[bytes | None, bytes | None, Headers], Awaitable[Any]]


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


def failed_message(message: Any, source_topic: str | None = None) -> FailedRecord:
    """A consumed Faust message as the producer sent it; `source_topic` names the original topic
    when it came through the re-key topic."""
    key, timestamp_ms, headers = original_record(message)
    return FailedRecord(
        key=key,
        value=message.value,
        origin=source_topic or message.topic,
        partition=message.partition,
        offset=message.offset,
        received_on=message.topic,
        headers=tuple(headers),
        timestamp_ms=timestamp_ms,
    )


class DeadLetterProducer:
    """The `DeadLetters` port over one transport's send."""

    def __init__(self, send: Send) -> None:
        self._send = send

    async def dead_letter(self, record: FailedRecord, kind: str, reason: str) -> None:
        headers = dead_letter_headers(
            record.origin,
            record.partition,
            record.offset,
            kind,
            reason,
            record.received_on,
            headers=list(record.headers),
            timestamp_ms=record.timestamp_ms,
        )
        raw_key = record.key.encode() if isinstance(record.key, str) else record.key
        await self._send(raw_key, record.value, headers)
        dead_lettered(record.origin, record.partition, record.offset, kind, reason)


class FaustSend:
    """Send on a worker's Faust topic object (core_app/stream_topics.dead_letter)."""

    def __init__(self, topic: Any) -> None:
        self.topic = topic

    async def __call__(self, key: bytes | None, value: bytes | None, headers: Headers) -> None:
        await self.topic.send(key=key, value=value, headers=headers)


class KafkaDeadLetters(DeadLetterProducer):
    """Dead letters from a process without a Faust app (`core sink`): same topic and headers, sent
    and awaited (the changelog offset is committed after this returns, so nothing is lost)."""

    def __init__(self, settings: Settings) -> None:
        self.producer = AIOKafkaProducer(
            **client_options(settings),
            client_id=f"{settings.worker_id}-pg-sink",
            acks="all",
        )
        super().__init__(self._send_and_wait)

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def _send_and_wait(self, key: bytes | None, value: bytes | None, headers: Headers) -> None:
        await self.producer.send_and_wait(DEAD_LETTER, key=key, value=value, headers=headers)
