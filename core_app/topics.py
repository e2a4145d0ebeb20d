"""Topic names and creation. Every customer topic is keyed `{merchant_id}:{customer_id}`."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from core_app.kafka_security import client_options
from core_app.settings import Settings

log = logging.getLogger(__name__)

COMPACTED = {"cleanup.policy": "compact"}

RFM_UPDATED = "rfm.updated"
POINTS_UPDATED = "points.updated"
REFERRAL_CREATED = "referral.created"
GDPR_REQUEST_CREATED = "gdpr_request.created"
CUSTOMER_CREATED = "customer.created"
CUSTOMER_UPDATED = "customer.updated"
IMPORT_INITIATED = "import.initiated"
MERCHANT_INSTALLED = "merchant.installed"  # Avro, keyed by merchant_id (views/shopify.py)
GDPR_EXPORT_READY = "gdpr_export.ready"  # Avro, keyed by merchant_id: a data export can be fetched
DEAD_LETTER = "core.dlq"
# Consumed events that arrived keyed some other way, re-keyed {merchant_id}:{customer_id}.
REKEYED = "core.rekeyed"
# API writes, sent to the agent that owns the customer's partition (JSON, keyed like the table).
CUSTOMER_COMMANDS = "core.customer.commands"
SETTINGS_COMMANDS = "core.settings.commands"  # keyed by merchant_id, like the settings table
# Live updates for WebSocket/GraphQL-subscription clients that are not customer.updated (import progress).
# JSON, keyed by merchant_id: {"type": "import.progress", "merchant_id": ..., "import_id": ..., ...}.
# Every worker reads it (and customer.updated) without a group and fans out to its own clients.
UPDATES = "core.updates"
# Customer imports: jobs for the import agent, keyed by import_id (JSON; carries the file URL, which
# import.initiated does not), and existing-customer updates for the owners of the customers'
# partitions (JSON, sent to an explicit partition: every customer in one command hashes to it).
IMPORT_JOBS = "core.import.jobs"
IMPORT_COMMANDS = "core.import.commands"
# Verified Shopify webhooks on their way to the webhook agent (JSON, keyed by shop domain): the HTTP
# handler answers Shopify at once and the agent does the work (agents/shopify_webhooks.py).
SHOPIFY_WEBHOOKS = "core.shopify.webhooks"
# A purged merchant's table entries, dropped by the owner of each partition by tombstones (JSON, one
# record per partition, sent to that partition explicitly; the owner confirms on the purge's channel).
TABLE_PURGES = "core.table.purges"

CONSUMED = (RFM_UPDATED, POINTS_UPDATED, REFERRAL_CREATED, GDPR_REQUEST_CREATED)
PRODUCED = (
    CUSTOMER_CREATED,
    CUSTOMER_UPDATED,
    IMPORT_INITIATED,
    MERCHANT_INSTALLED,
    GDPR_EXPORT_READY,
    DEAD_LETTER,
)
INTERNAL = (
    REKEYED,
    CUSTOMER_COMMANDS,
    SETTINGS_COMMANDS,
    IMPORT_JOBS,
    IMPORT_COMMANDS,
    SHOPIFY_WEBHOOKS,
    TABLE_PURGES,
)
BROADCAST = (UPDATES,)  # read by every worker outside the consumer group, not by an agent


async def ensure_topics(
    settings: Settings, names: tuple[str, ...] = CONSUMED + PRODUCED + INTERNAL + BROADCAST
) -> list[str]:
    """Create missing topics with the configured partition count; returns the names created.

    Consumed topics must have `kafka_topic_partitions` partitions so that they co-partition with the
    tables. On a cluster where the producers own the topics this finds them all and creates nothing.
    """
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        wanted = dict.fromkeys(names, (settings.kafka_topic_partitions, False))
        missing, _ = await create_missing(admin, wanted, settings)
        if missing:
            log.info("created topics", extra={"topics": missing})
        return missing
    finally:
        await admin.close()


async def create_missing(
    admin: AIOKafkaAdminClient, wanted: Mapping[str, tuple[int, bool]], settings: Settings
) -> tuple[list[str], set[str]]:
    """Create the topics of `wanted` (name -> (partitions, compacted)) the broker does not have:
    (the names created, the names it had)."""
    existing = set(await admin.list_topics()) & set(wanted)
    missing = [name for name in wanted if name not in existing]
    if missing:
        await admin.create_topics([new_topic(name, *wanted[name], settings) for name in missing])
    return missing, existing


def new_topic(name: str, partitions: int, compacted: bool, settings: Settings) -> NewTopic:
    return NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=settings.kafka_replication_factor,
        topic_configs=COMPACTED if compacted else {},
    )
