"""Adapters of the dead-letter service's ports (core_app/services/dead_letters.py): `core.dlq` read
with its own consumer (no group, nothing committed) and re-injected with an awaited producer, and the
`dead_letter_replays` table that makes a replay idempotent."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg2
import psycopg2.extras
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from core_app import topics
from core_app.end_offsets import confirmed_end_offsets
from core_app.kafka_security import client_options
from core_app.services.dead_letters import DeadLetter, DeadLetterService, Filters
from core_app.settings import Settings


class KafkaDeadLetterTopic:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def read(self, filters: Filters, limit: int | None = None) -> list[DeadLetter]:
        return await read_letters(self.settings, filters, limit)

    async def reinject(self, records: Sequence[dict[str, Any]]) -> None:
        producer = AIOKafkaProducer(**client_options(self.settings), acks="all")
        await producer.start()
        try:
            acks = [await producer.send(**record) for record in records]
            await asyncio.gather(*acks)
        finally:
            await producer.stop()


class PgReplayLog:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def replayed(self, letters: Sequence[DeadLetter]) -> set[tuple[int, int]]:
        return await asyncio.to_thread(_replayed, self.settings, letters)

    async def record(self, letters: Sequence[DeadLetter], actor: str) -> None:
        await asyncio.to_thread(_record_replays, self.settings, letters, actor)


def dead_letter_service(settings: Settings) -> DeadLetterService:
    """The service on Kafka and PostgreSQL (the operator CLI, and the admin DLQ in a worker)."""
    return DeadLetterService(
        KafkaDeadLetterTopic(settings), PgReplayLog(settings), settings.kafka_topic_partitions
    )


async def read_letters(settings: Settings, filters: Filters, limit: int | None = None) -> list[DeadLetter]:
    """The matching letters, oldest first per partition, read to the topic's end (at most `limit`)."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, fetch_max_wait_ms=100)
    await consumer.start()
    found: list[DeadLetter] = []
    try:
        partitions = [TopicPartition(topics.DEAD_LETTER, p) for p in await _partitions(consumer)]
        if not partitions:
            return []
        ends = await confirmed_end_offsets(consumer, partitions)  # Tansu under-reports ends (D110)
        consumer.assign(partitions)
        starts = await _start_offsets(consumer, partitions, filters.since, ends)
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
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    since: datetime | None,
    ends: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    starts = await consumer.beginning_offsets(partitions)
    if since is None:
        return dict(starts)
    at_ms = max(0, int(since.timestamp() * 1000))  # a time before 1970 means from the start
    by_time = await consumer.offsets_for_times({tp: at_ms for tp in partitions})
    return {tp: by_time[tp].offset if by_time.get(tp) else ends[tp] for tp in partitions}


def _replayed(settings: Settings, letters: Sequence[DeadLetter]) -> set[tuple[int, int]]:
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


def _record_replays(settings: Settings, letters: Sequence[DeadLetter], actor: str) -> None:
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
