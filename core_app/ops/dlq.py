"""`core dlq replay`: send dead letters back to the topic they came from, after the cause is fixed.

Reads `core.dlq` without a consumer group (nothing is committed, so a replay can be repeated) from
`--from-offset` to the end offsets seen at start, keeps the records whose `source_topic` header is
`--source-topic` (and `--kind`, if given), and produces each one's key and value unchanged, byte for
byte (Avro with the Confluent framing), with a `replayed_from` header. The agents skip what was
already applied, so replaying a record twice changes nothing.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from core_app.settings import Settings
from core_app.topics import DEAD_LETTER


@dataclass(frozen=True)
class Replay:
    source_topic: str
    kind: str | None = None
    from_offset: int = 0
    dry_run: bool = False


def _header(record: ConsumerRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode(errors="replace")
    return None


def selected(record: ConsumerRecord, replay: Replay) -> bool:
    if _header(record, "source_topic") != replay.source_topic:
        return False
    return replay.kind is None or _header(record, "error_kind") == replay.kind


async def replay_dead_letters(settings: Settings, replay: Replay) -> tuple[int, int]:
    """(records read, records replayed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    try:
        await consumer.topics()  # loads the cluster metadata
        numbers = consumer.partitions_for_topic(DEAD_LETTER) or set()
        partitions = [TopicPartition(DEAD_LETTER, p) for p in sorted(numbers)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, replay.from_offset)
        return await _copy(consumer, producer, ends, replay)
    finally:
        await consumer.stop()
        await producer.stop()


async def _copy(
    consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, ends: dict[TopicPartition, int], replay: Replay
) -> tuple[int, int]:
    read = replayed = 0
    pending = {tp for tp, end in ends.items() if end > replay.from_offset}
    while pending:
        batches = await consumer.getmany(*pending, timeout_ms=1000)
        for tp, records in batches.items():
            for record in (r for r in records if r.offset < ends[tp]):
                read += 1
                if not selected(record, replay):
                    continue
                replayed += 1
                if not replay.dry_run:
                    origin = f"{DEAD_LETTER}:{record.partition}:{record.offset}".encode()
                    await producer.send_and_wait(
                        replay.source_topic, record.value, key=record.key, headers=[("replayed_from", origin)]
                    )
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
    return read, replayed


def run_cli(settings: Settings, replay: Replay) -> int:
    read, replayed = asyncio.run(replay_dead_letters(settings, replay))
    verb = "would replay" if replay.dry_run else "replayed"
    print(f"read {read} dead letters; {verb} {replayed} to {replay.source_topic}", file=sys.stdout)
    return 0
