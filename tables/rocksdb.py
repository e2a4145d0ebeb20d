"""RocksDB sizing for every table.

Faust's defaults are per RocksDB instance: 3 x 64 MiB memtables and a 2 GiB block cache. A worker
opens one instance per table per partition (3 tables x 12 partitions), so the defaults alone could
ask for tens of GiB; the plan's pod limit is 512 MiB. Memory per worker is bounded by
partitions x tables x (write_buffer x max_write_buffers + block_cache), plus each open table file's
index and Bloom filter (about 2 bytes a key at 10 bits a key).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
import rocksdict
from faust.stores import STORES
from faust.stores import rocksdb as faust_rocksdb

from core_app.settings import Settings

BLOOM_BITS_PER_KEY = 10
# The store every table uses (core_app/app.py): Faust's, its instances sharing one memory budget.
STORE_URL = "core-rocksdb://"


def rocksdb_options(settings: Settings) -> dict[str, Any]:
    mib = 1024 * 1024
    return {
        "write_buffer_size": settings.rocksdb_write_buffer_mb * mib,
        "max_write_buffer_number": 2,
        "target_file_size_base": 16 * mib,
        "block_cache_size": settings.rocksdb_block_cache_mb * mib,
        "block_cache_compressed_size": 0,
        # Bits per key. Faust's 3 let ~15 % of the lookups of absent keys (every first touch) through
        # to a data block of each table file, which filled the block caches; 10 lets ~1 % (D245).
        "bloom_filter_size": BLOOM_BITS_PER_KEY,
        "memory_budget_mb": settings.rocksdb_memory_mb,
    }


@cache
def shared_memory(budget_mb: int) -> tuple[rocksdict.Cache, rocksdict.WriteBufferManager]:
    """The process's one block cache of `budget_mb`, and a write buffer manager that charges every
    memtable to it and flushes the largest past half of it (never stalls writers)."""
    block_cache = rocksdict.Cache(budget_mb * 1024 * 1024)
    memtables = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
        budget_mb * 1024 * 1024 // 2, False, block_cache
    )
    return block_cache, memtables


class SharedMemoryOptions(faust_rocksdb.RocksDBOptions):
    """Faust's options, plus: with `memory_budget_mb`, every instance (one per table per partition)
    shares one block cache, which holds the memtables, data blocks, and index and filter blocks, so
    RocksDB's memory is that budget however many instances and files there are (D260)."""

    def as_options(self) -> Any:
        options = super().as_options()
        budget_mb = int(self.extra_options.get("memory_budget_mb") or 0)
        if not self.use_rocksdict or budget_mb <= 0:
            return options
        block_cache, memtables = shared_memory(budget_mb)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(block_cache)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)  # the files every read checks first
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(memtables)
        return options


class SharedMemoryStore(faust_rocksdb.Store):
    """Faust's RocksDB store with `SharedMemoryOptions`; everything else is Faust's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rocksdb_options = SharedMemoryOptions(**self.options, use_rocksdict=self.use_rocksdict)


STORES.aliases.setdefault(STORE_URL.split(":")[0], f"{__name__}:SharedMemoryStore")


def encode_key(store: Any, key: Any) -> bytes:
    """`store._encode_key(key)`: Faust's bytes for a table key, in one call for the common case.

    For a printable ASCII str under the json key serializer, orjson writes exactly what Faust's json
    codec does (a unit test compares them); Faust goes through four registry layers (~2 us a key on
    every read and write). Anything else takes Faust's own path.
    """
    if type(key) is str and store.key_serializer == "json" and key.isascii() and key.isprintable():
        return orjson.dumps(key)
    return store._encode_key(key)  # type: ignore[no-any-return]


def right_sized(data: bytes) -> bytes:
    """A copy of `data` in an allocation of its own length.

    orjson (3.12 on) returns bytes whose buffer stays at its initial capacity, at least 4 KiB, whatever
    the length: a chunk's pending table keys and values held 8 KiB per event until sent (D245). Only
    bytes that are kept need it (tables/changelog.py); a read's key is dropped at once.
    """
    return bytes(memoryview(data))


def read_in_partition(table: Any, key: Any, partition: int) -> Any:
    """The table's value for `key` from one partition's RocksDB only (one get), or None.

    This reaches into Faust's RocksDB store (`_dbs`, `_encode_key`, `_decode_value` of
    faust-streaming 0.15, pinned): the read-path integration tests would show a change as reads no
    longer answered by the table. A partition this worker has not opened holds nothing here; a
    store without `_dbs` (memory://) is read the public way.
    """
    store = table.data
    dbs = getattr(store, "_dbs", None)
    if dbs is None:
        return table.get(key)
    db = dbs.get(partition)
    if db is None:
        return None
    raw = db.get(encode_key(store, key))
    if raw is None:
        return None
    # Faust's json codec gives the same dict as orjson, through four layers of registry calls.
    return orjson.loads(raw) if store.value_serializer == "json" else store._decode_value(raw)
