"""The worker's memory bounds of issue 21 (D245): records per poll, right-sized table bytes, one
partition memo for the record writer, and the RocksDB options."""

from __future__ import annotations

import tracemalloc
import uuid
from pathlib import Path

import orjson
from aiokafka.partitioner import DefaultPartitioner

from core_app import routing
from core_app.settings import Settings
from tables.changelog import partitioner
from tables.rocksdb import BLOOM_BITS_PER_KEY, right_sized, rocksdb_options

PARTITIONS = list(range(12))


async def test_each_poll_hands_over_at_most_kafka_max_poll_records(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from core_app.app import create_app
    from core_app.kafka_transport import TunedConsumerThread

    monkeypatch.setenv("KAFKA_MAX_POLL_RECORDS", "123")
    app = create_app(Settings())
    assert app.conf.broker_max_poll_records == 123
    thread = TunedConsumerThread(app.consumer, loop=None, beacon=None)
    # What Faust's fetcher passes to every aiokafka getmany as max_records.
    assert thread._create_worker_consumer(app.transport)._max_poll_records == 123


def test_the_default_cap_is_a_few_chunks_of_batched_delivery() -> None:
    settings = Settings()
    assert settings.kafka_max_poll_records == 5 * settings.ingest_chunk_events == 20_000


def allocated(make: object) -> int:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make() for _ in range(200)]  # type: ignore[operator]
        return (tracemalloc.get_traced_memory()[0] - before) // len(kept)
    finally:
        tracemalloc.stop()


def test_right_sized_bytes_equal_the_input_in_an_allocation_of_their_length() -> None:
    key = f"{uuid.uuid4()}:{uuid.uuid4()}"
    assert right_sized(orjson.dumps(key)) == orjson.dumps(key)
    per_object = allocated(lambda: right_sized(orjson.dumps(key)))
    assert per_object < 256, per_object  # orjson's own bytes hold 4 KiB whatever their length


def test_the_writers_partitions_are_the_producers_default_partitioners() -> None:
    partition_of = partitioner(DefaultPartitioner(), PARTITIONS)
    keys = [f"{uuid.uuid4()}:{uuid.uuid4()}".encode() for _ in range(300)]
    keys += ["é-merchant:ü-customer".encode(), b"\xff\xfe not utf-8"]
    for key in keys:
        assert partition_of(key) == DefaultPartitioner()(key, PARTITIONS, PARTITIONS)


def test_the_writer_keeps_no_memo_of_its_own(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(routing, "PARTITION_MEMO_KEYS", 50)
    monkeypatch.setattr(routing, "_partition_memos", {})
    partition_of = partitioner(DefaultPartitioner(), PARTITIONS)
    for _ in range(500):
        partition_of(f"{uuid.uuid4()}:{uuid.uuid4()}".encode())
    assert sum(len(memo) for memo in routing._partition_memos.values()) <= 50


def test_another_partitioner_is_used_as_it_is() -> None:
    calls: list[bytes] = []

    def last(key: bytes, all_partitions: list[int], available: list[int]) -> int:
        calls.append(key)
        return all_partitions[-1]

    assert partitioner(last, PARTITIONS)(b"m:c") == 11
    assert calls == [b"m:c"]


def test_rocksdb_options_bound_memory_and_open(tmp_path: Path) -> None:
    from faust.stores.rocksdb import RocksDBOptions

    settings = Settings(rocksdb_write_buffer_mb=3, rocksdb_block_cache_mb=5)
    options = rocksdb_options(settings)
    assert options["write_buffer_size"] == 3 * 2**20
    assert options["max_write_buffer_number"] == 2
    assert options["block_cache_size"] == 5 * 2**20
    assert options["bloom_filter_size"] == BLOOM_BITS_PER_KEY == 10
    db = RocksDBOptions(**options, use_rocksdict=True).open(tmp_path / "db")
    db[b"k"] = b"v"
    assert db[b"k"] == b"v"
    db.close()


def test_every_rocksdb_instance_shares_one_budget_for_memtables_blocks_indexes_and_filters(
    tmp_path: Path,
) -> None:
    from tables.rocksdb import SharedMemoryOptions

    options = rocksdb_options(Settings(rocksdb_memory_mb=7))
    first, second = (SharedMemoryOptions(**options, use_rocksdict=True).open(tmp_path / n) for n in "ab")
    try:
        assert second.property_int_value("rocksdb.block-cache-capacity") == 7 * 2**20
        idle = second.property_int_value("rocksdb.block-cache-usage")
        for n in range(2000):
            first[f"k{n}".encode()] = bytes(500)
        # The first instance's memtable is charged to the cache the second one reads through.
        assert second.property_int_value("rocksdb.block-cache-usage") > idle + 2**20
    finally:
        first.close()
        second.close()


def test_without_a_budget_each_instance_has_its_own_cache(tmp_path: Path) -> None:
    from tables.rocksdb import SharedMemoryOptions

    options = rocksdb_options(Settings(rocksdb_memory_mb=0, rocksdb_block_cache_mb=3))
    db = SharedMemoryOptions(**options, use_rocksdict=True).open(tmp_path / "db")
    try:
        assert db.property_int_value("rocksdb.block-cache-capacity") == 3 * 2**20
    finally:
        db.close()


def test_the_tables_use_the_shared_budget_store() -> None:
    from tables.customers import customers_table
    from tables.rocksdb import SharedMemoryStore

    assert Settings().rocksdb_memory_mb == 24
    assert type(customers_table.data) is SharedMemoryStore


async def test_each_consumer_fetches_at_most_kafka_max_partition_fetch_bytes_a_partition(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from core_app.app import create_app
    from core_app.kafka_transport import TunedConsumerThread

    assert Settings().kafka_max_partition_fetch_bytes == 2**20  # aiokafka's default (D259)
    monkeypatch.setenv("KAFKA_MAX_PARTITION_FETCH_BYTES", "65536")
    app = create_app(Settings())
    thread = TunedConsumerThread(app.consumer, loop=None, beacon=None)
    assert thread._create_worker_consumer(app.transport)._max_partition_fetch_bytes == 65536
