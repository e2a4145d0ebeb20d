"""Which worker owns a key, for reads from any transport.

Faust's `app.router.key_store()` hashes the table's *serialized* key (JSON for our str keys), while
the producers of `rfm.updated` & co. partition by the raw `{merchant_id}:{customer_id}` bytes with
Kafka's default partitioner, and tables write where the source event was (faust-streaming #187,
#514). So the partition is computed here exactly as the producers do, then looked up in the
assignor's table of which worker holds which changelog partition.
"""

from __future__ import annotations

import struct
from typing import Any

from faust.types import AppT

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_WORDS: dict[int, struct.Struct] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (as aiokafka.partitioner.murmur2, which a test compares it with), about twice
    as fast: the 4-byte words are unpacked at once. It runs on every read (owner routing)."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = _WORDS.get(length)
    if words is None:
        words = _WORDS[length] = struct.Struct(f"<{length // 4}I")
    for k in words.unpack_from(data):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        base = length - tail
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = ((h ^ data[base]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


# Per partition count: key -> partition. murmur2 is ~4 us of pure Python and every read needs the
# partition, while reads repeat keys; bounded, it starts over when full (imports pass a million keys).
PARTITION_MEMO_KEYS = 65_536
_partition_memos: dict[int, dict[str, int]] = {}


def key_partition(key: str, partitions: int) -> int:
    """Kafka's default partitioner (Java and aiokafka): murmur2 of the key bytes, positive, modulo."""
    memo = _partition_memos.get(partitions)
    if memo is None:
        memo = _partition_memos[partitions] = {}
    partition = memo.get(key)
    if partition is None:
        partition = (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
        if len(memo) >= PARTITION_MEMO_KEYS:
            memo.clear()
        memo[key] = partition
    return partition


def table_partition(app: AppT, table_name: str, key: str) -> int:
    table = app.tables[table_name]
    return key_partition(key, table.partitions or app.conf.topic_partitions)


# Per table: the assignor's changelog distribution it was computed from, and partition -> owner URL.
# Faust replaces the distribution object at every assignment, so an identity check keeps it fresh.
_owners: dict[str, tuple[Any, dict[int, str]]] = {}


def partition_owner(app: AppT, table_name: str, partition: int) -> str | None:
    """The canonical URL of the worker holding `partition` of the table as active, if known."""
    distribution = app.assignor.changelog_distribution
    cached = _owners.get(table_name)
    if cached is None or cached[0] is not distribution:
        topic = app.tables[table_name].changelog_topic_name
        owners: dict[int, str] = {}
        for url, topics in distribution.items():
            for p in topics.get(topic, ()):
                owners.setdefault(p, str(url))
        cached = _owners[table_name] = (distribution, owners)
    return cached[1].get(partition)


def owner_url(app: AppT, table_name: str, key: str) -> str | None:
    """The canonical URL of the worker holding `key`'s partition as active, if the assignment knows it."""
    return partition_owner(app, table_name, table_partition(app, table_name, key))


def same_worker(url: str, canonical: str) -> bool:
    return url.rstrip("/") == canonical.rstrip("/")
