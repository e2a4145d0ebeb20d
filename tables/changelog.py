"""A lean write path for the `customers` table: one encode per write, records sent in batches.

Faust's own path (`table[key] = value`) serialises the value twice (store and changelog), then per
record builds a FutureMessage, queues it in its ProducerBuffer, where one task takes it, runs the
publish machinery, calls `AIOKafkaProducer.send` (partitioner, accumulator, a future and a callback)
and writes the changelog offset into RocksDB. `RecordWriter` keeps what matters and batches the rest:

- `write()` (synchronous, like `table[key] = value`) encodes the key and value once with the table's
  own serializers, puts them into the key's RocksDB partition, and appends the same bytes to the
  changelog partition's pending list. `produce()` appends any other record (`customer.updated`).
- One task sends the pending lists in the order they were appended, one aiokafka `BatchBuilder` per
  topic partition, through Faust's own aiokafka producer. A key always maps to one partition and that
  partition's records are sent in append order, so the changelog order is the write order.
- `FlushingProducer.flush()` (`core_app/kafka_transport.py`), which Faust runs before it commits source
  offsets, first drains this writer, then flushes aiokafka: commit-after-produce holds as before.
- A delivered changelog batch stores its last offset as the partition's persisted offset, once per
  batch (Faust does it once per record). A send that fails ends the worker process (exit 71): the source
  offsets are then not committed and the events are processed again after the restart.

It uses Faust and aiokafka internals (the store's partition databases, `_ensure_producer`); the
integration tests (SIGKILL restart, recovery) guard them. See docs/decisions.md D70.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from faust.types import TP, AppT, CollectionT

from core_app import metrics
from core_app.logs import one_line
from core_app.routing import key_partition
from tables.rocksdb import encode_key, right_sized

log = logging.getLogger(__name__)

Records = list[tuple[bytes | None, bytes | None]]

BATCH_BYTES = 256 * 1024  # one BatchBuilder per topic partition and send; well under max_request_size
EBB_RECORDS = 2000  # the pipeline waits while more records than this are pending
EXIT_PRODUCE_FAILED = 71  # the worker's exit code when a record could not be produced
BY_KEY = -1  # a pending list whose records the writer partitions by key when it sends them


class RecordWriter:
    def __init__(self, app: AppT) -> None:
        self.app = app
        # (topic, partition) -> [(key, value)] in append order; the stores whose changelog a topic is.
        self._pending: dict[tuple[str, int], Records] = {}
        self._stores: dict[str, Any] = {}
        self.size = 0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    # --- synchronous: called inside the agents' apply step ---------------------------------------

    def write(self, table: CollectionT, partition: int, key: Any, value: Any) -> None:
        """`table[key] = value` for the key's own `partition` (the source event's)."""
        store = table.data
        key_bytes = right_sized(encode_key(store, key))  # both held until sent
        value_bytes = right_sized(store._encode_value(value))
        store._db_for_partition(partition).put(key_bytes, value_bytes)
        store._key_index[key_bytes] = partition
        topic = table.changelog_topic.get_topic_name()
        self._stores[topic] = store
        self._append(topic, partition, key_bytes, value_bytes)

    def delete(self, table: CollectionT, partition: int, key_bytes: bytes) -> None:
        """`del table[key]` for the key's own `partition`: gone from RocksDB now, a tombstone queued
        for the changelog (standbys, recovery and the sink drop the key when they read it)."""
        store = table.data
        store._db_for_partition(partition).delete(key_bytes)
        store._key_index.pop(key_bytes, None)
        topic = table.changelog_topic.get_topic_name()
        self._stores[topic] = store
        self._append(topic, partition, key_bytes, None)

    def read(self, table: CollectionT, partition: int, key: Any) -> Any:
        """`table.get(key)` for the key's own `partition`: one RocksDB read (Faust's `get` makes two)."""
        store = table.data
        key_bytes = encode_key(store, key)
        value_bytes = store._db_for_partition(partition).get(key_bytes)
        if value_bytes is None:
            return None
        store._key_index[right_sized(key_bytes)] = partition  # kept by Faust's key index
        return store._decode_value(value_bytes)

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        """A keyed record, sent after every record appended before it (partitioned by its key)."""
        self._append(topic, BY_KEY, key, value)

    def _append(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        if self._error is not None:
            raise RuntimeError("the record writer failed; the worker is stopping") from self._error
        self._pending.setdefault((topic, partition), []).append((key, value))
        self.size += 1
        self._idle.clear()
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="record-writer")

    # --- asynchronous --------------------------------------------------------------------------

    async def drain(self) -> None:
        """Until every record appended so far is in aiokafka's accumulator (then flush aiokafka)."""
        while not self._idle.is_set():
            if self._error is not None:
                raise RuntimeError("the record writer failed") from self._error
            await self._idle.wait()
        if self._error is not None:
            raise RuntimeError("the record writer failed") from self._error

    async def wait_until_ebb(self, max_records: int = EBB_RECORDS) -> None:
        """Back-pressure for the agents: wait while the writer is far behind."""
        if self.size > max_records:
            started = time.perf_counter()
            await self.drain()
            metrics.writer_waits.inc(time.perf_counter() - started)

    async def _run(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._pending:
                    pending, self._pending = self._pending, {}
                    for (topic, partition), records in pending.items():
                        if partition == BY_KEY:
                            for by_key, group in (await self._by_partition(topic, records)).items():
                                await self._send(topic, by_key, group)
                        else:
                            await self._send(topic, partition, records)
                        self.size -= len(records)
                self._idle.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fail(exc)

    async def _by_partition(self, topic: str, records: Records) -> dict[int, Records]:
        """Records grouped by the partition the producer's partitioner gives their key, in order."""
        producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]
        all_partitions = sorted(await producer.partitions_for(topic))  # waits for metadata
        partition_of = partitioner(producer._partitioner, all_partitions)
        groups: dict[int, Records] = {}
        for key, value in records:
            groups.setdefault(partition_of(key), []).append((key, value))  # type: ignore[arg-type]
        return groups

    async def _send(self, topic: str, partition: int, records: Records) -> None:
        producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]
        compression = producer._message_accumulator._compression_type  # the codec's attribute bits
        builder = new_builder(compression)
        for key, value in records:
            if builder.append(timestamp=None, key=key, value=value) is None:  # full
                await self._submit(producer, builder, topic, partition)
                builder = new_builder(compression)
                builder.append(timestamp=None, key=key, value=value)
        await self._submit(producer, builder, topic, partition)

    async def _submit(self, producer: Any, builder: BatchBuilder, topic: str, partition: int) -> None:
        count = builder.record_count()
        if not count:
            return
        # Closed: ready to send at once instead of after the producer's linger. The writer batches
        # already, and aiokafka sends one request per broker at a time, so requests stay full.
        builder.close()
        future = await producer.send_batch(builder, topic, partition=partition)
        future.add_done_callback(self._delivered_callback(topic, partition, count))

    def _delivered_callback(self, topic: str, partition: int, count: int) -> Callable[[Any], None]:
        store = self._stores.get(topic)

        def delivered(future: asyncio.Future[Any]) -> None:
            if future.cancelled():
                return
            exc = future.exception()
            if exc is not None:
                self._fail(exc)
                return
            if store is not None:
                try:
                    # What Faust's _on_changelog_sent does per record: where recovery may resume.
                    store.set_persisted_offset(TP(topic, partition), future.result().offset + count - 1)
                except Exception as store_exc:  # the partition was revoked and its store closed
                    log.debug("persisted offset not stored", extra={"error": repr(store_exc)})

        return delivered

    def _fail(self, exc: BaseException) -> None:
        """A record could not be produced (aiokafka gave up after its own retries): exit at once.

        The source offsets behind it are never committed (the commit's flush cannot succeed) and the
        local state is rebuilt from the changelogs on restart (no clean-shutdown marker), so the events
        are processed again. Going on instead would dead-letter good events or lose changelog records.
        """
        if self._error is None:
            self._error = exc
            self._idle.set()  # wake drain() so it raises instead of waiting forever
            log.error("producing records failed", exc_info=exc)
            log.critical(
                "fatal, exiting: producing records failed: %s",
                one_line(exc),
                extra={"exit_code": EXIT_PRODUCE_FAILED},
            )
            logging.shutdown()
            os._exit(EXIT_PRODUCE_FAILED)


def partitioner(default: Any, all_partitions: list[int]) -> Callable[[bytes], int]:
    """The partition of a key as the producer's partitioner picks it. aiokafka's default is murmur2,
    pure Python (~10 us a key), so a UTF-8 key goes through routing's bounded memo, which the
    pipeline's own routing checks already filled with the same keys: no second memo of every key
    (the writer's own held up to 100,000, ~16 MiB; D245)."""
    if not isinstance(default, DefaultPartitioner) or all_partitions != list(range(len(all_partitions))):
        return lambda key: default(key, all_partitions, all_partitions)  # type: ignore[no-any-return]
    count = len(all_partitions)

    def partition_of(key: bytes) -> int:
        try:
            return key_partition(key.decode(), count)
        except UnicodeDecodeError:
            return default(key, all_partitions, all_partitions)  # type: ignore[no-any-return]

    return partition_of


def new_builder(compression_type: int = 0) -> BatchBuilder:
    return BatchBuilder(
        BATCH_BYTES, compression_type, is_transactional=False, key_serializer=None, value_serializer=None
    )


_writers: dict[int, RecordWriter] = {}


def writer_for(app: AppT) -> RecordWriter:
    writer = _writers.get(id(app))
    if writer is None:
        writer = _writers[id(app)] = RecordWriter(app)
        register_flush_hook(app, writer.drain)
    return writer


def register_flush_hook(app: AppT, hook: Callable[[], Awaitable[None]]) -> None:
    from core_app.kafka_transport import FLUSH_FIRST

    FLUSH_FIRST.append(hook)
