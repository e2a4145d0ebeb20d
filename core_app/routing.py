"""Which worker owns a key, for reads from any transport.

Faust's `app.router.key_store()` hashes the table's *serialized* key (JSON for our str keys), while
the producers of `rfm.updated` & co. partition by the raw `{merchant_id}:{customer_id}` bytes with
Kafka's default partitioner, and tables write where the source event was (faust-streaming #187,
#514). So the partition is computed here exactly as the producers do, then looked up in the
assignor's table of which worker holds which changelog partition.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2
from faust.types import AppT


def key_partition(key: str, partitions: int) -> int:
    """Kafka's default partitioner (Java and aiokafka): murmur2 of the key bytes, positive, modulo."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def owner_url(app: AppT, table_name: str, key: str) -> str | None:
    """The canonical URL of the worker holding `key`'s partition as active, if the assignment knows it."""
    table = app.tables[table_name]
    partition = key_partition(key, table.partitions or app.conf.topic_partitions)
    for url, topics in app.router.table_metadata(table_name).items():
        if partition in topics.get(table.changelog_topic_name, ()):
            return str(url)
    return None


def same_worker(url: str, canonical: str) -> bool:
    return url.rstrip("/") == canonical.rstrip("/")
