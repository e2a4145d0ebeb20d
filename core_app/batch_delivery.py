"""Batched delivery of the pipeline's source topics, past Faust's per-message path (D234).

Faust hands each fetched record to its agent one at a time: per record the fetcher's drain loop
starts four tasks and an `asyncio.wait` (`wait_first`), the conductor decodes it into an Event and
queues it, and the stream takes, tracks and acks it. That alone costs a bare counting agent ~80 us a
message, more than the pipeline's own work per event. Here the consumer (core_app/kafka_transport.py
`TunedConsumer.getmany`) keeps the records of a routed topic out of that path: the records of one
fetch are collected per partition, in offset order, and handed to the topic's handler in chunks;
once a chunk's handler returned, its offsets are acked in Faust's own bookkeeping, so Faust's commit
(after its producer flush, which drains the record writer) stays what makes them durable.

What does not change: a partition's records are handled in offset order by one task, one chunk after
another (per-key order); a chunk runs inline in Faust's fetcher, so nothing of a fetch is handled
after a rebalance started (the flow stopped or the generation changed: the rest is dropped unacked
and read again from the committed offset); `wait_empty` (rebalance, stop) waits for the chunk under
way, which is shielded from the fetcher's cancellation. Faust keeps the tables, the changelogs, their
recovery, the commits and every other topic. `INGEST_BATCH_DELIVERY=false` restores the agents' path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faust.types import TP
from faust.types.tuples import ack_lock

from core_app import metrics
from core_app.settings import Settings

log = logging.getLogger(__name__)


class BatchEvent:
    """What the pipeline reads of a Faust Event: the key as text (raw bytes when it is not UTF-8), the
    value and headers as consumed, and Faust's message (topic, partition, offset, timestamp)."""

    __slots__ = ("headers", "key", "message", "value")

    def __init__(self, message: Any) -> None:
        self.message = message
        key = message.key
        if isinstance(key, bytes):
            try:
                key = key.decode()
            except UnicodeDecodeError:
                pass  # not a customer key: the pipeline re-keys the event by its value, or dead-letters it
        self.key = key
        self.value = message.value
        self.headers = message.headers


BatchHandler = Callable[[list[BatchEvent]], Awaitable[None]]

ROUTES: dict[str, BatchHandler] = {}


def route(topic: str, handler: BatchHandler) -> None:
    """Deliver `topic`'s records to `handler` in chunks (its agent's stream then stays idle)."""
    ROUTES[topic] = handler


Collected = dict[TP, list[Any]]  # partition -> Faust messages in offset order


class BatchDelivery:
    """One per consumer: hands the routed records of a fetch to their handlers, then acks them."""

    def __init__(self, consumer: Any, settings: Settings) -> None:
        self.consumer = consumer
        self.enabled = settings.ingest_batch_delivery
        self.chunk_events = settings.ingest_chunk_events
        self._running: asyncio.Task[None] | None = None

    def routed(self, topic: str) -> bool:
        return self.enabled and topic in ROUTES

    async def deliver(self, collected: Collected, generation_id: int) -> None:
        """Inline in the fetcher; the work itself survives the fetcher's cancellation (stop, rebalance)
        so that `wait_idle` sees it through and no chunk is half handled when offsets commit."""
        task = asyncio.get_running_loop().create_task(self._deliver(collected, generation_id))
        self._running = task
        await asyncio.shield(task)

    async def wait_idle(self) -> None:
        task = self._running
        if task is not None and not task.done():
            await asyncio.wait([task])

    async def _deliver(self, collected: Collected, generation_id: int) -> None:
        by_topic: dict[str, list[tuple[TP, list[Any]]]] = {}
        for tp, messages in collected.items():
            by_topic.setdefault(tp.topic, []).append((tp, messages))
        for topic, parts in by_topic.items():
            handler = ROUTES[topic]
            for chunk in chunks(parts, self.chunk_events):
                if not self._current(generation_id):
                    return  # a rebalance started: the rest is read again from the committed offsets
                await handler([BatchEvent(message) for _, messages in chunk for message in messages])
                metrics.ingest_chunks.labels(topic).inc()
                for tp, messages in chunk:
                    self.ack(tp, [message.offset for message in messages])

    def _current(self, generation_id: int) -> bool:
        consumer = self.consumer
        return bool(consumer.flow_active) and consumer.app.consumer_generation_id == generation_id

    def ack(self, tp: TP, offsets: list[int]) -> None:
        """`Consumer.ack` for handled records, without a Message each: what Faust's commit reads."""
        consumer = self.consumer
        with ack_lock:
            committed = consumer._committed_offset[tp]
            index = consumer._acked_index[tp]
            new = [o for o in offsets if (committed is None or o >= committed) and o not in index]
            index.update(new)
            consumer._acked[tp].extend(new)
            consumer._n_acked += len(new)
            consumer._read_offset[tp] = offsets[-1]
        waiter = consumer._waiting_for_ack
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def chunks(parts: list[tuple[TP, list[Any]]], size: int) -> list[list[tuple[TP, list[Any]]]]:
    """Partitions' records cut into chunks of about `size` events, each partition's in offset order
    (a chunk holds whole runs of partitions; a long run is split)."""
    out: list[list[tuple[TP, list[Any]]]] = []
    current: list[tuple[TP, list[Any]]] = []
    count = 0
    for tp, messages in parts:
        for start in range(0, len(messages), size):
            piece = messages[start : start + size]
            if count and count + len(piece) > size:
                out.append(current)
                current, count = [], 0
            current.append((tp, piece))
            count += len(piece)
    if current:
        out.append(current)
    return out
