"""RocksDB sizing for every table.

Faust's defaults are per RocksDB instance: 3 x 64 MiB memtables and a 2 GiB block cache. A worker
opens one instance per table per partition (3 tables x 12 partitions), so the defaults alone could
ask for tens of GiB; the plan's pod limit is 512 MiB. Memory per worker is bounded by
partitions x tables x (write_buffer x max_write_buffers + block_cache).
"""

from __future__ import annotations

from typing import Any

from core_app.settings import Settings


def rocksdb_options(settings: Settings) -> dict[str, Any]:
    mib = 1024 * 1024
    return {
        "write_buffer_size": settings.rocksdb_write_buffer_mb * mib,
        "max_write_buffer_number": 2,
        "target_file_size_base": 16 * mib,
        "block_cache_size": settings.rocksdb_block_cache_mb * mib,
        "block_cache_compressed_size": 0,
    }
