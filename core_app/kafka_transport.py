"""Faust's aiokafka transport with a configurable consumer fetch wait.

Faust hard-codes `fetch_max_wait_ms=1500`. A real Kafka broker answers a fetch as soon as data
arrives, but Tansu holds every fetch for its full max-wait, so in dev and tests the wait bounds every
consume hop. KAFKA_FETCH_MAX_WAIT_MS sets it (default 1500, as Faust).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from prometheus_client import Counter

from core_app.batch_delivery import BatchDelivery, Collected
from core_app.changelog_apply import ChangelogApply
from core_app.settings import get_settings

log = logging.getLogger(__name__)

MAX_REWINDS = 5  # jumps at one offset before it is taken as a real gap


def rewinds_at(rewound: dict[Any, tuple[int, int]], tp: Any, offset: int) -> int:
    last = rewound.get(tp)
    return last[1] if last is not None and last[0] == offset else 0


positions_rewound = Counter(
    "core_consumer_positions_rewound_total",
    "Source partitions sought back because their records skipped undelivered offsets",
    ["topic"],
)

# Drained by every flush before Faust's own buffer: writers that append records to the aiokafka
# producer on their own (tables/changelog.py RecordWriter).
FLUSH_FIRST: list[Callable[[], Awaitable[None]]] = []


class TunedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    fetch_max_wait_ms: int = 1500

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this attribute when it builds its Fetcher in start().
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer


class TunedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> TunedConsumerThread:
        return TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rewound: dict[Any, tuple[int, int]] = {}  # partition -> (offset rewound to, how often)
        settings = get_settings()
        self._batches = BatchDelivery(self, settings)
        self._changelog_apply = ChangelogApply(self, settings.recovery_batch_apply)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        """Faust's, but a source partition whose records jump past undelivered offsets is rewound, and
        the records of batch-routed topics go to their handlers a fetch at a time (D234).

        Faust acks such a jump as a "gap" (meant for compaction and transaction markers) and commits
        past it. In a rebalance under load the consumer's position could run ahead of what was
        delivered (records fetched, then dropped when the flow stopped, with no seek back after), and
        the gap ack then lost those events for good: 174 in one partition in one run (D114). Here the
        partition is sought back and the jumping records are held back; a jump seen MAX_REWINDS times
        at the same place is a real gap (aborted transactions, compaction) and goes through to Faust.
        """
        changelogs = self.app.tables.changelog_topics
        held: set[Any] = set()
        seen: dict[Any, int] = {}  # partition -> last offset of this fetch (Faust's read offset lags)
        collected: Collected = {}
        generation_id = None  # the messages' own: Faust's getmany reads it after its wait for records
        async for tp, message in super().getmany(timeout):
            if tp in held:
                continue
            expected = seen[tp] if tp in seen else self._read_offset.get(tp)
            if expected is not None and message.offset > expected + 1 and tp.topic not in changelogs:
                if not await self._jumped(tp, expected, message.offset, held):
                    continue
            seen[tp] = message.offset
            if self._batches.routed(tp.topic):
                read = self._read_offset.get(tp)
                if read is None or message.offset >= read:  # as Faust's drain loop: older ones are stale
                    collected.setdefault(tp, []).append(message)
                    generation_id = message.generation_id
                continue
            yield tp, message
        if generation_id is not None:
            await self._batches.deliver(collected, generation_id)

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
        """A snapshot of the active partitions, never Faust's live set, and nothing for none (D235).

        aiokafka reads an empty set as "every partition" and reads the set again while it waits.
        Faust hands it its live set of active partitions, which a pause can empty meanwhile (the end of
        a recovery pauses the active changelogs while the stream partitions are still paused): aiokafka
        then drained the stream partitions' prefetched records, moved their positions past them, and
        Faust dropped them as not active. With no later record to show the jump (D114) the partition
        stalled for good: seen after a SIGKILL restart as a partition that never moved again.
        """
        if active_partitions is None:
            return await super()._getmany(None, timeout)
        snapshot = set(active_partitions)
        if not snapshot:
            return {}
        return await super()._getmany(snapshot, timeout)

    async def _wait_next_records(self, timeout: float) -> Any:
        """Faust's, but records of a partition paused since the fetch was asked for are given back:
        its position is sought back to them (Faust would drop them with the position past them).
        The changelogs' records are then applied to the tables here, a fetch at a time (D238)."""
        records, active = await super()._wait_next_records(timeout)
        if records and active is not None:
            stray = [tp for tp in records if tp not in active and tp not in self._buffered_partitions]
            for tp in stray:
                first = records.pop(tp)[:1]
                if first and self.flow_active:  # else a rebalance is on: it seeks to the committed offsets
                    await self._give_back(tp, first[0].offset)
        if records:
            self._changelog_apply.take(records)
        return records, active

    async def _give_back(self, tp: Any, offset: int) -> None:
        log.info("%s[%s]: records fetched while paused; seeking back to %s", tp.topic, tp.partition, offset)
        try:
            await self.seek(tp, offset)
        except Exception as exc:  # no longer assigned: its next owner starts at the committed offset
            log.info("seek back skipped", extra={"topic": tp.topic, "error": repr(exc)})

    async def _jumped(self, tp: Any, expected: int, offset: int, held: set[Any]) -> bool:
        """True: a real gap, the record goes through; False: the partition was rewound and is held."""
        rewound = self._rewound
        tries = rewinds_at(rewound, tp, expected)
        if tries >= MAX_REWINDS:
            return True  # a real gap: Faust acks it (and _add_gap logs it)
        rewound[tp] = (expected, tries + 1)
        held.add(tp)
        positions_rewound.labels(tp.topic).inc()
        log.warning("%s[%s] jumped from %s to %s; rewinding", tp.topic, tp.partition, expected, offset)
        # From `expected` itself: it is the last delivered offset, or (just after a seek to the
        # committed offset) the next one; one duplicate is skipped as stale downstream.
        await self.seek(tp, expected)
        return False

    async def wait_empty(self) -> None:
        """Faust's, after the batch under way (if any) is handled and acked."""
        await self._batches.wait_idle()
        await super().wait_empty()

    async def _commit(self, offsets: Any) -> bool:
        committed: bool = await super()._commit(offsets)
        self.app.broker_watch.on_commit(offsets, committed)  # type: ignore[attr-defined]
        return committed

    async def seek_to_committed(self) -> Any:
        committed = await super().seek_to_committed()
        self.app.broker_watch.on_committed_read(  # type: ignore[attr-defined]
            {TP(tp.topic, tp.partition): offset for tp, offset in committed.items()}
        )
        return committed

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        # Faust treats offsets it never delivered as acked ("gaps": compaction, transaction markers).
        log.warning(
            "offset gap in %s[%s]: %s..%s taken as acked",
            tp.topic,
            tp.partition,
            offset_from,
            offset_to,
            extra={"topic": tp.topic, "partition": tp.partition, "from": offset_from, "to": offset_to},
        )
        await super()._add_gap(tp, offset_from, offset_to)


def group_coordinator(app: Any) -> Any | None:
    """aiokafka's group coordinator of the app's consumer (in Faust's consumer thread), or None."""
    thread = getattr(app.consumer, "_thread", None)
    consumer = getattr(thread, "_consumer", None)
    return getattr(consumer, "_coordinator", None)


def in_group(app: Any) -> bool:
    """The consumer holds a member id and a generation of its group."""
    coordinator = group_coordinator(app)
    return coordinator is not None and coordinator.generation >= 0 and bool(coordinator.member_id)


def group_stable(app: Any) -> bool:
    """The consumer holds the assignment of the group's current generation and no rebalance is under
    way: it joined, synced, was handed its partitions, and aiokafka has no rejoin pending."""
    coordinator = group_coordinator(app)
    if coordinator is None or not in_group(app) or app.rebalancing:
        return False
    subscription = coordinator._subscription.subscription
    if subscription is None or coordinator.need_rejoin(subscription):
        return False
    return bool(app.consumer_generation_id == coordinator.generation)


class FlushingProducer(faust_aiokafka.Producer):
    """Faust's producer, whose flush really empties the buffer.

    Faust flushes the producer before it commits source offsets. Its buffer's `flush_atmost()` gives
    up after waiting 0.1 s for one message, so under load the flush could return with changelog
    records still buffered, the offsets were committed, and a crash lost those records (seen as a
    flaky SIGKILL test). Looping until the buffer is empty keeps commit-after-produce true. Records
    that bypass the buffer (`FLUSH_FIRST` writers) are handed to aiokafka first, then all is flushed.
    """

    async def flush(self) -> None:
        for drain in FLUSH_FIRST:
            await drain()
        started = time.monotonic()
        while self.buffer.size:
            await self.buffer.flush_atmost(self.buffer.size)
            if time.monotonic() - started > 5:
                log.warning("producer flush is slow", extra={"pending": self.buffer.size})
                started = time.monotonic()
        await super().flush()


class CoreTransport(faust_aiokafka.Transport):
    Consumer = TunedConsumer
    Producer = FlushingProducer


def set_fetch_max_wait_ms(value: int) -> None:
    TunedConsumerThread.fetch_max_wait_ms = value
