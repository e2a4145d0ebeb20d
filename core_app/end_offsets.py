"""End offsets confirmed by a fetch, because ListOffsets cannot always be trusted.

Tansu 0.6.0 answers ListOffsets "latest" with the base offset of the partition's last record batch
plus one, not the last record's offset plus one (a 3-record batch at base 1 reports 2, not 4;
tests/integration/test_end_offsets.py pins this). Faust's recovery stops reading a changelog at that
highwater, and crashes when a persisted offset is beyond it. So the reported end is confirmed here:
read from `reported - 1` (the start of the last batch on Tansu, the last record on Kafka) until a
fetch brings nothing new; the confirmed end is the last offset read plus one. One short fetch per
partition per recovery, on a consumer of its own that joins no group (docs/decisions.md D110).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError
from prometheus_client import Counter

log = logging.getLogger(__name__)

unconfirmed = Counter(
    "core_end_offsets_unconfirmed_total", "Partitions whose end offset a fetch could not confirm in time"
)

PROBE_FETCH_WAIT_MS = 50  # an empty fetch at the end costs this much on a broker that holds fetches
PROBE_DEADLINE_SECONDS = 30.0


async def confirm_end_offsets(
    consumer: AIOKafkaConsumer,
    reported: Mapping[TopicPartition, int | None],
    deadline: float = PROBE_DEADLINE_SECONDS,
) -> dict[TopicPartition, int | None]:
    """`reported` end offsets, each raised to the last record's offset + 1 that a fetch finds.

    `consumer` is started, in no group, with `auto_offset_reset="none"`. A partition that cannot be
    read in time keeps its reported end (logged): the probe never makes an end lower than reported.
    """
    confirmed: dict[TopicPartition, int | None] = dict(reported)
    probed = {tp: end for tp, end in reported.items() if end}
    if not probed:
        return confirmed
    consumer.assign(list(probed))
    for tp, end in probed.items():
        consumer.seek(tp, end - 1)
    pending = set(probed)
    give_up = time.monotonic() + deadline
    while pending and time.monotonic() < give_up:
        try:
            batches = await consumer.getmany(*pending, timeout_ms=PROBE_FETCH_WAIT_MS * 4)
        except OffsetOutOfRangeError as exc:  # the reported end is beyond the log: keep it
            out_of_range = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
            pending.difference_update(out_of_range)
            continue
        for tp in list(pending):
            records = batches.get(tp)
            if records:
                confirmed[tp] = max(confirmed[tp] or 0, records[-1].offset + 1)
            # Done once the position has reached the high watermark of the last fetch response (right
            # on Kafka and on Tansu, in memory or on S3) and the seek point. An empty getmany alone
            # proves nothing: a fetch still in flight, or one a slow broker gave up, also brings
            # nothing (D110). Wait for it until the deadline, never guess.
            elif (highwater := consumer.highwater(tp)) is not None and await consumer.position(tp) >= max(
                highwater, probed[tp]
            ):
                confirmed[tp] = max(confirmed[tp] or 0, highwater)
                pending.discard(tp)
    if pending:
        unconfirmed.inc(len(pending))
        log.error("end offsets not confirmed in time", extra={"partitions": sorted(map(str, pending))})
    return confirmed


async def confirmed_end_offsets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """The partitions' ends, confirmed by a fetch, for a reader that reads a topic to its end (0 for an
    end unknown). The probe assigns and moves `consumer`: assign and seek it afterwards."""
    reported = await consumer.end_offsets(partitions)
    confirmed = await confirm_end_offsets(consumer, reported)
    return {tp: confirmed.get(tp) or 0 for tp in partitions}


async def records_at(
    consumer: AIOKafkaConsumer,
    offsets: Mapping[TopicPartition, int],
    deadline: float = PROBE_DEADLINE_SECONDS,
) -> dict[TopicPartition, ConsumerRecord[bytes, bytes] | None]:
    """Per partition, the first record at or after the offset (the record at it, unless compaction
    removed it), or None: the offset is out of the log, or nothing came in time."""
    found: dict[TopicPartition, ConsumerRecord[bytes, bytes] | None] = dict.fromkeys(offsets)
    if not offsets:
        return found
    consumer.assign(list(offsets))
    for tp, offset in offsets.items():
        consumer.seek(tp, offset)
    pending = set(offsets)
    give_up = time.monotonic() + deadline
    while pending and time.monotonic() < give_up:
        try:
            batches = await consumer.getmany(*pending, timeout_ms=PROBE_FETCH_WAIT_MS * 4)
        except OffsetOutOfRangeError as exc:
            out_of_range = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
            pending.difference_update(out_of_range)
            continue
        for tp, records in batches.items():
            if records and tp in pending:
                found[tp] = records[0]
                pending.discard(tp)
    if pending:
        log.warning("changelog records not read in time", extra={"partitions": sorted(map(str, pending))})
    return found


class EndOffsetProbe:
    """A group-less consumer kept for reading changelog ends and records (one per worker, opened on
    first use)."""

    def __init__(self, kafka_options: Mapping[str, Any], client_id: str = "core-end-offsets") -> None:
        self.kafka_options = kafka_options  # bootstrap servers and security (core_app/kafka_security)
        self.client_id = client_id
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def confirm(
        self, reported: Mapping[TopicPartition, int | None]
    ) -> dict[TopicPartition, int | None]:
        async with self._lock:
            try:
                consumer = await self._open()
                return await confirm_end_offsets(consumer, reported)
            except KafkaError as exc:
                log.warning("end-offset probe failed; using the reported ends", extra={"error": repr(exc)})
                await self.close()
                return dict(reported)

    async def end_offsets(
        self, partitions: Iterable[TopicPartition], deadline: float = PROBE_DEADLINE_SECONDS
    ) -> dict[TopicPartition, int | None]:
        """ListOffsets "latest" of `partitions`, each confirmed by a fetch; {} if the broker fails."""
        async with self._lock:
            try:
                consumer = await self._open()
                reported = await consumer.end_offsets(list(partitions))
                return await confirm_end_offsets(consumer, reported, deadline)
            except KafkaError as exc:
                log.warning("end-offset probe failed", extra={"error": repr(exc)})
                await self.close()
                return {}

    async def records_at(
        self, offsets: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, ConsumerRecord[bytes, bytes] | None]:
        async with self._lock:
            try:
                return await records_at(await self._open(), offsets)
            except KafkaError as exc:
                log.warning("changelog record probe failed", extra={"error": repr(exc)})
                await self.close()
                return dict.fromkeys(offsets)

    async def _open(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **self.kafka_options,
                client_id=self.client_id,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="none",
                fetch_max_wait_ms=PROBE_FETCH_WAIT_MS,
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
