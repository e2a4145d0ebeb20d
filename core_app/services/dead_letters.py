"""Operator use cases on `core.dlq`: list, show, replay (docs/decisions.md D104).

A dead letter keeps the record as consumed (key, value) with headers saying where it came from and
why (agents/dead_letter.py). `replay` re-injects records through the normal path: to the key's own
partition of `core.rekeyed` with their original `source_topic`, where the `rekeyed` agent decodes,
validates and applies them like any event (a record still bad is dead-lettered again, as a new
letter). It is idempotent: each letter replayed is recorded in `dead_letter_replays` (by partition and
offset), and a second replay skips it; the events are absolute and ordered by `occurred_at`, so even
a letter sent twice changes the state once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg2
import psycopg2.extras
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from core_app import topics
from core_app.routing import key_partition
from core_app.settings import Settings

# What agents/dead_letter.py adds; any other header is the producer's own and travels on.
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


async def read_letters(settings: Settings, filters: Filters, limit: int | None = None) -> list[DeadLetter]:
    """The matching letters, oldest first per partition, read to the topic's end (at most `limit`)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await consumer.start()
    found: list[DeadLetter] = []
    try:
        partitions = [TopicPartition(topics.DEAD_LETTER, p) for p in await _partitions(consumer)]
        if not partitions:
            return []
        consumer.assign(partitions)
        starts = await _start_offsets(consumer, partitions, filters.since)
        ends = await consumer.end_offsets(partitions)
        pending = {tp for tp in partitions if starts[tp] < ends[tp]}
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        while pending and (limit is None or len(found) < limit):
            batches = await consumer.getmany(*pending, timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    letter = DeadLetter(
                        tp.partition, record.offset, record.timestamp, record.key, record.value,
                        tuple((name, bytes(value)) for name, value in record.headers),
                    )  # fmt: skip
                    if filters.match(letter):
                        found.append(letter)
                    if record.offset + 1 >= ends[tp]:
                        pending.discard(tp)
    finally:
        await consumer.stop()
    return found[:limit] if limit is not None else found


async def _partitions(consumer: AIOKafkaConsumer) -> list[int]:
    for _ in range(20):
        known = consumer.partitions_for_topic(topics.DEAD_LETTER)
        if known:
            return sorted(known)
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    return []


async def _start_offsets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], since: datetime | None
) -> dict[TopicPartition, int]:
    starts = await consumer.beginning_offsets(partitions)
    if since is None:
        return dict(starts)
    ends = await consumer.end_offsets(partitions)
    at_ms = max(0, int(since.timestamp() * 1000))  # a time before 1970 means from the start
    by_time = await consumer.offsets_for_times({tp: at_ms for tp in partitions})
    return {tp: by_time[tp].offset if by_time.get(tp) else ends[tp] for tp in partitions}


async def find_letters(settings: Settings, ref: str) -> list[DeadLetter]:
    """`partition:offset`, or a bare offset (then every partition's letter at that offset)."""
    partition, _, offset = ref.rpartition(":")
    wanted = int(offset)
    letters = await read_letters(settings, Filters())
    return [
        letter
        for letter in letters
        if letter.offset == wanted and (not partition or letter.partition == int(partition))
    ]


def _replayed(settings: Settings, letters: list[DeadLetter]) -> set[tuple[int, int]]:
    conn = psycopg2.connect(settings.db_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT dlq_partition, dlq_offset FROM dead_letter_replays"
                " WHERE (dlq_partition, dlq_offset) IN (SELECT * FROM unnest(%s::int[], %s::bigint[]))",
                ([letter.partition for letter in letters], [letter.offset for letter in letters]),
            )
            return {(int(p), int(o)) for p, o in cur.fetchall()}
    finally:
        conn.close()


def _record_replays(settings: Settings, letters: list[DeadLetter], actor: str) -> None:
    conn = psycopg2.connect(settings.db_dsn)
    try:
        with conn, conn.cursor() as cur:
            psycopg2.extras.execute_values(
                cur,
                "INSERT INTO dead_letter_replays (dlq_partition, dlq_offset, actor) VALUES %s"
                " ON CONFLICT DO NOTHING",
                [(letter.partition, letter.offset, actor) for letter in letters],
            )
    finally:
        conn.close()


async def replay(settings: Settings, filters: Filters, actor: str) -> dict[str, int]:
    """Re-inject the matching letters not replayed before; returns the counts."""
    letters = [
        letter for letter in await read_letters(settings, filters) if letter.source_topic in topics.CONSUMED
    ]
    done = await asyncio.to_thread(_replayed, settings, letters) if letters else set()
    todo = [letter for letter in letters if (letter.partition, letter.offset) not in done]
    if todo:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            acks = [await producer.send(**replay_record(letter, settings)) for letter in todo]
            await asyncio.gather(*acks)  # recorded only once in the topic: a crash replays again
        finally:
            await producer.stop()
        await asyncio.to_thread(_record_replays, settings, todo, actor)
    return {"matched": len(letters), "replayed": len(todo), "already_replayed": len(letters) - len(todo)}


def replay_record(letter: DeadLetter, settings: Settings) -> dict[str, Any]:
    key = (letter.key or b"").decode(errors="replace")
    partition = key_partition(key, settings.kafka_topic_partitions) if letter.key is not None else 0
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
