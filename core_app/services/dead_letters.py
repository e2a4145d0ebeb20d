"""Operator use cases on `core.dlq`: list, show, replay (docs/decisions.md D104).

A dead letter keeps the record as consumed (key, value) with headers saying where it came from and
why (core_app/dead_lettering.py). `replay` re-injects records through the normal path: to the key's own
partition of `core.rekeyed` with their original `source_topic`, where the `rekeyed` agent decodes,
validates and applies them like any event (a record still bad is dead-lettered again, as a new
letter). It is idempotent: each letter replayed is recorded in `dead_letter_replays` (by partition and
offset), and a second replay skips it; the events are absolute and ordered by `occurred_at`, so even
a letter sent twice changes the state once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from core_app import topics
from core_app.routing import key_partition

# What core_app/dead_lettering.py adds; any other header is the producer's own and travels on.
DEAD_LETTER_HEADERS = frozenset(
    {"source_topic", "source_partition", "source_offset", "received_on", "error_kind", "reason"}
)


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        for header, value in self.headers:
            if header == name:
                return value.decode(errors="replace")
        return None

    @property
    def source_topic(self) -> str | None:
        return self.header("source_topic")

    @property
    def reason_kind(self) -> str | None:
        return self.header("error_kind")

    def merchant_id(self) -> str | None:
        key = (self.key or b"").decode(errors="replace")
        return key.split(":", 1)[0] if key.count(":") == 1 else None

    def summary(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": datetime.fromtimestamp(self.timestamp_ms / 1000, UTC).isoformat(),
            "key": (self.key or b"").decode(errors="replace") or None,
            "source_topic": self.source_topic,
            "error_kind": self.reason_kind,
            "reason": self.header("reason"),
        }


@dataclass(frozen=True)
class Filters:
    topic: str | None = None
    reason: str | None = None
    since: datetime | None = None
    merchant_id: str | None = None

    def match(self, letter: DeadLetter) -> bool:
        if self.topic is not None and letter.source_topic != self.topic:
            return False
        if self.reason is not None and letter.reason_kind != self.reason:
            return False
        if self.since is not None and letter.timestamp_ms < self.since.timestamp() * 1000:
            return False
        return self.merchant_id is None or letter.merchant_id() == self.merchant_id


class DeadLetterTopic(Protocol):
    """`core.dlq` read to its end, and records sent back in (core_app/dlq_topic.KafkaDeadLetterTopic)."""

    async def read(self, filters: Filters, limit: int | None = None) -> list[DeadLetter]: ...

    async def reinject(self, records: Sequence[dict[str, Any]]) -> None:
        """Send every record (keyword arguments of a producer send) and wait for all their acks."""
        ...


class ReplayLog(Protocol):
    """Which letters were replayed already (`dead_letter_replays`, core_app/dlq_topic.PgReplayLog)."""

    async def replayed(self, letters: Sequence[DeadLetter]) -> set[tuple[int, int]]: ...

    async def record(self, letters: Sequence[DeadLetter], actor: str) -> None: ...


class DeadLetterService:
    """The operator's `core dlq list | show | replay`, and the admin DLQ's reads."""

    def __init__(self, topic: DeadLetterTopic, replays: ReplayLog, partitions: int) -> None:
        self.topic = topic
        self.replays = replays
        self.partitions = partitions  # of the consumed topics, to pick a letter key's own partition

    async def list(self, filters: Filters, limit: int | None = None) -> list[DeadLetter]:
        """The matching letters, oldest first per partition (at most `limit`)."""
        return await self.topic.read(filters, limit)

    async def find(self, ref: str) -> list[DeadLetter]:
        """`partition:offset`, or a bare offset (then every partition's letter at that offset)."""
        partition, _, offset = ref.rpartition(":")
        wanted = int(offset)
        return [
            letter
            for letter in await self.topic.read(Filters())
            if letter.offset == wanted and (not partition or letter.partition == int(partition))
        ]

    async def replay(self, filters: Filters, actor: str) -> dict[str, int]:
        """Re-inject the matching letters not replayed before; returns the counts."""
        letters = [
            letter for letter in await self.topic.read(filters) if letter.source_topic in topics.CONSUMED
        ]
        done = await self.replays.replayed(letters) if letters else set()
        todo = [letter for letter in letters if (letter.partition, letter.offset) not in done]
        if todo:
            # Recorded only once they are in the topic: a crash in between replays again.
            await self.topic.reinject([replay_record(letter, self.partitions) for letter in todo])
            await self.replays.record(todo, actor)
        return {"matched": len(letters), "replayed": len(todo), "already_replayed": len(letters) - len(todo)}


def replay_record(letter: DeadLetter, partitions: int) -> dict[str, Any]:
    key = (letter.key or b"").decode(errors="replace")
    partition = key_partition(key, partitions) if letter.key is not None else 0
    kept = [(name, value) for name, value in letter.headers if name not in DEAD_LETTER_HEADERS]
    headers = [
        *kept,
        ("source_topic", (letter.source_topic or "").encode()),
        ("replayed_from", f"{topics.DEAD_LETTER}/{letter.partition}/{letter.offset}".encode()),
    ]
    return {
        "topic": topics.REKEYED,
        "key": letter.key,
        "value": letter.value,
        "partition": partition,
        "timestamp_ms": letter.timestamp_ms,
        "headers": headers,
    }
