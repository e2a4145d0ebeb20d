"""The worker's topics, made again after a broker lost them, and never made by the broker's defaults.

A broker that comes back empty (a wiped dev Tansu, a replaced cluster) has none of the service's
topics. Faust declares the tables' changelogs once, at start, and `ensure_topics` runs once, at start
(D14), so a worker that lives through the loss had no way to get them back. Meanwhile every client's
metadata request asked the broker to create each topic it named (aiokafka's default), and Tansu, like
a Kafka with `auto.create.topics.enable`, creates it with its own default partition count (4 on
Tansu, `num.partitions` on Kafka) and no compaction: a changelog or source topic that no longer
co-partitions with the tables, whose missing partitions no recovery can read to their end
(docs/decisions.md D208). So, in `core worker` and `core sink`:
- `forbid_auto_creation` makes every metadata request of the process's aiokafka clients ask for no
  creation: a missing topic stays missing (a producer waits, then fails) until it is made right;
- `repair_topics` runs at the start of every table recovery (which a lost group always causes): it
  creates each missing topic with the configured partitions (changelogs compacted, with their
  tables' partitions), and names the consumed, internal and changelog topics that exist with another
  partition count, which only an operator can fix (Tansu cannot add partitions; Kafka can, at the
  price of moving keys).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiokafka.client
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest
from prometheus_client import Counter

from core_app.kafka_security import client_options
from core_app.settings import Settings
from core_app.topics import BROADCAST, CONSUMED, INTERNAL, PRODUCED, create_missing

log = logging.getLogger(__name__)

topics_recreated = Counter(
    "core_topics_recreated_total", "Topics the worker created again because the broker had lost them"
)

REPAIR_DEADLINE_SECONDS = 15.0


class NoAutoCreateMetadataRequest(MetadataRequest):
    """A metadata request that never asks the broker to create the topics it names."""

    def __init__(
        self, topics: list[str] | None = None, allow_auto_topic_creation: bool | None = None
    ) -> None:
        super().__init__(topics, allow_auto_topic_creation=False)


def forbid_auto_creation() -> None:
    """Every aiokafka client of this process asks for metadata without creating topics."""
    aiokafka.client.MetadataRequest = NoAutoCreateMetadataRequest  # type: ignore[misc]


@dataclass
class TopicRepair:
    created: list[str] = field(default_factory=list)
    wrong: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (partitions, wanted)


def wanted_topics(settings: Settings, changelogs: Mapping[str, int]) -> dict[str, tuple[int, bool]]:
    """name -> (partitions, compacted) of every topic the worker needs."""
    plain = CONSUMED + PRODUCED + INTERNAL + BROADCAST
    wanted = {name: (settings.kafka_topic_partitions, False) for name in plain}
    wanted.update({name: (partitions, True) for name, partitions in changelogs.items()})
    return wanted


def co_partitioned(changelogs: Mapping[str, int]) -> set[str]:
    """The topics whose partitions must be the tables': consumed, internal (keyed like the tables)
    and the changelogs. What the service only produces may have any count."""
    return set(CONSUMED + INTERNAL) | set(changelogs)


async def repair_topics(settings: Settings, changelogs: Mapping[str, int]) -> TopicRepair:
    """Create the missing topics; report those with another partition count (never raises: a broker
    away is the `kafka` check's to report, and the next recovery tries again)."""
    try:
        return await asyncio.wait_for(_repair(settings, changelogs), REPAIR_DEADLINE_SECONDS)
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning("topics not checked", extra={"error": repr(exc)})
        return TopicRepair()


async def _repair(settings: Settings, changelogs: Mapping[str, int]) -> TopicRepair:
    wanted = wanted_topics(settings, changelogs)
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        missing, existing = await create_missing(admin, wanted, settings)
        if missing:
            topics_recreated.inc(len(missing))
            log.warning("topics missing on the broker, created again", extra={"topics": missing})
        described: list[Any] = await admin.describe_topics(sorted(existing)) if existing else []
    finally:
        await admin.close()
    judged = co_partitioned(changelogs)
    wrong = {
        str(topic["topic"]): (len(topic["partitions"]), wanted[topic["topic"]][0])
        for topic in described
        if topic["topic"] in judged and len(topic["partitions"]) != wanted[topic["topic"]][0]
    }
    for name, (have, want) in wrong.items():
        log.error(
            "topic %s has %d partitions, the tables need %d: recreate it with %d",
            name,
            have,
            want,
            want,
            extra={"topic": name},
        )
    return TopicRepair(missing, wrong)
