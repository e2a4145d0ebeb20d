"""Repartition on ingress: an event applies only on its key's own partition (docs/decisions.md D100).

Producers in any language partition as their client likes (librdkafka's default is CRC32, Java's and
aiokafka's murmur2, some pick at random). The table writes where the event is processed and reads
are routed by murmur2 (core_app/routing.py), so an event that arrived elsewhere is forwarded, with its
headers and original timestamp, to its key's partition of `core.rekeyed` (the partition chosen here,
by the service's own murmur2, never by a client default). The batch awaits every forward's ack
before it completes, so Faust commits the source offset only after the forward is in the topic: a
crash in between forwards twice at worst, and the owner skips the second copy as not newer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Any

from faust.types import EventT

from core_app import metrics, topics
from core_app.app import app
from core_app.dead_lettering import rekey_headers
from core_app.routing import key_partition

# Headers this service sets on a forward; a producer's own header of the same name is replaced.
OWN_HEADERS = frozenset({"source_topic", "forwarded_from"})


def own_partition(key: str) -> int:
    """The partition of `key` in every co-partitioned topic and table (the customers table's count)."""
    return key_partition(key, app.conf.topic_partitions)


def customer_shaped(key: Any) -> str | None:
    """The record key as text when it looks like `{merchant_id}:{customer_id}` (not yet validated)."""
    if isinstance(key, bytes):
        try:
            key = key.decode()
        except UnicodeDecodeError:
            return None
    return key if isinstance(key, str) and key.count(":") == 1 else None


def is_misrouted(event: EventT, key: str) -> bool:
    return bool(event.message.partition != own_partition(key))


def header_items(headers: Any) -> Iterable[tuple[str, Any]]:
    if not headers:
        return ()
    return headers.items() if isinstance(headers, dict) else headers


def forward_headers(event: EventT, origin: str) -> list[tuple[str, bytes]]:
    """The producer's headers, then where the event came from (its original topic picks the parser)."""
    message = event.message
    timestamp_ms = int(message.timestamp * 1000) if message.timestamp is not None else None
    # Ours first (source_topic picks the parser), then the producer's own (D150).
    ours = rekey_headers(origin, message.key, timestamp_ms, event.headers)
    return [*ours, ("forwarded_from", f"{message.topic}/{message.partition}/{message.offset}".encode())]


async def forward(event: EventT, key: str, origin: str, *, rekeyed: bool = False) -> Awaitable[Any]:
    """Send `event` to `key`'s own partition of `core.rekeyed`; returns the send's ack future.

    `rekeyed`: the event was keyed some other way (counted as re-keyed, not repartitioned).

    Faust's producer (not its buffer): the record goes straight to aiokafka, whose future resolves once
    the broker has it. The caller awaits it before its batch ends.
    """
    message = event.message
    ack = await send_to_owner(key, message.value, message.timestamp or None, forward_headers(event, origin))
    (metrics.events_rekeyed if rekeyed else metrics.events_repartitioned).labels(origin).inc()
    return ack


async def send_to_owner(
    key: str, value: bytes | None, timestamp: float | None, headers: list[tuple[str, bytes]]
) -> Awaitable[Any]:
    """Produce a raw consumed record to `key`'s own partition of `core.rekeyed`; the ack future."""
    return await app.producer.send(
        topics.REKEYED, key.encode(), value, own_partition(key), timestamp, headers
    )
