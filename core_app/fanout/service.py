"""The fan-out consumer: every worker reads `customer.updated` and `core.updates`, with no group.

Each worker assigns itself every partition of both topics and starts at their end, so an update that
is published once (by whichever worker applied the change or runs the import) reaches the clients of
every worker. Nothing is committed: a live stream has no history to resume; a client that reconnects
reads the current state through the query APIs. The fetch wait is `KAFKA_FETCH_MAX_WAIT_MS` (D6).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from mode import Service
from prometheus_client import Counter

from core_app import topics
from core_app.events.codec import DecodeError
from core_app.fanout.hub import FanoutHub, set_hub
from core_app.fanout.messages import Update, customer_update, json_update, merchant_of_key
from core_app.kafka_security import client_options

if TYPE_CHECKING:
    from core_app.components import Components

log = logging.getLogger(__name__)

TOPICS = (topics.CUSTOMER_UPDATED, topics.UPDATES)
PACE_MAX = 0.1  # seconds the consumer may wait, per fetch, for clients that are catching up
PACE_STEP = 0.005

consumed = Counter("core_fanout_records_total", "Records the fan-out consumer read", ["topic"])
undecodable = Counter("core_fanout_undecodable_total", "Fan-out records that were not updates", ["topic"])


class FanoutService(Service):
    def __init__(self, components: Components, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.components = components  # the codec is the runtime's, open once the worker starts
        settings = self.settings = components.settings
        self.hub = FanoutHub(settings.fanout_queue_size)
        # One fetch fills at most a quarter of a queue; _pace keeps live clients under half before the next.
        self.batch_max = max(1, settings.fanout_queue_size // 4)
        self.consumer: AIOKafkaConsumer | None = None

    async def on_start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            group_id=None,
            client_id=f"{self.settings.worker_id}-fanout",
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
            max_partition_fetch_bytes=self.settings.kafka_max_partition_fetch_bytes,
        )
        await self.consumer.start()
        await self.consumer.topics()  # loads the partition metadata of every topic
        partitions = [
            TopicPartition(topic, partition)
            for topic in TOPICS
            for partition in sorted(self.consumer.partitions_for_topic(topic) or ())
        ]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the end offsets now: updates after start-up are never missed
            await self.consumer.position(tp)
        set_hub(self.hub)
        log.info("fan-out consumer positioned", extra={"partitions": len(partitions)})
        self.add_future(self._run())

    async def on_stop(self) -> None:
        self.hub.close_all()
        set_hub(None)
        if self.consumer is not None:
            await self.consumer.stop()

    async def _run(self) -> None:
        assert self.consumer is not None
        while not self.should_stop:
            try:
                batches = await self.consumer.getmany(timeout_ms=1000, max_records=self.batch_max)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("fan-out fetch failed; retrying")
                await asyncio.sleep(1.0)
                continue
            for records in batches.values():
                for record in records:
                    if await self.handle(record):
                        await asyncio.sleep(0)  # let the clients' senders run between records
            await self._pace()

    async def _pace(self) -> None:
        """Give clients that are behind but making progress time to catch up (up to PACE_MAX).

        A burst may outrun a client that keeps up on average (GraphQL costs more per update than the
        stream); it must not be dropped for that. A client that took nothing during a wait is
        stalled: it is not waited for, and its queue fills until the hub drops it.
        """
        deadline = time.monotonic() + PACE_MAX
        while time.monotonic() < deadline:
            behind = self.hub.behind(self.settings.fanout_queue_size // 2)
            if not behind:
                return
            taken = [sub.taken for sub in behind]
            await asyncio.sleep(PACE_STEP)
            if all(sub.taken == before for sub, before in zip(behind, taken, strict=True)):
                return

    async def handle(self, record: ConsumerRecord) -> int:
        """Decode one record and dispatch it, if any client here watches its merchant.

        Returns how many subscriptions took it."""
        consumed.labels(record.topic).inc()
        if not self.hub.watches(merchant_of_key(record.key)):
            return 0
        update = await self._decode(record)
        if update is None:
            undecodable.labels(record.topic).inc()
            return 0
        return self.hub.dispatch(update)

    async def _decode(self, record: ConsumerRecord) -> Update | None:
        if record.topic != topics.CUSTOMER_UPDATED:
            return json_update(record.value)
        try:
            return customer_update(await self.components.runtime.codec.decode(record.value))
        except (DecodeError, KeyError, ValueError, TypeError) as exc:
            log.warning("fan-out: undecodable customer.updated", extra={"error": str(exc)})
            return None
