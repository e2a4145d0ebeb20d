"""Faust's aiokafka transport with a configurable consumer fetch wait.

Faust hard-codes `fetch_max_wait_ms=1500`. A real Kafka broker answers a fetch as soon as data
arrives, but Tansu holds every fetch for its full max-wait, so in dev and tests the wait bounds every
consume hop. KAFKA_FETCH_MAX_WAIT_MS sets it (default 1500, as Faust).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger(__name__)

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
