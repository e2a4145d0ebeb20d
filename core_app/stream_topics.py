"""Faust topic objects (an adapter: agents subscribe to them, the publisher sends on them).
Payloads stay raw bytes: agents decode them, so bad input is dead-lettered instead of failing inside
Faust's deserializer."""

from __future__ import annotations

from faust.types import TopicT

from core_app import topics
from core_app.app import app


def raw_topic(name: str) -> TopicT:
    return app.topic(
        name,
        key_type=str,
        key_serializer="raw",
        value_serializer="raw",
        partitions=app.conf.topic_partitions,
    )


rfm_updated = raw_topic(topics.RFM_UPDATED)
points_updated = raw_topic(topics.POINTS_UPDATED)
referral_created = raw_topic(topics.REFERRAL_CREATED)
gdpr_request_created = raw_topic(topics.GDPR_REQUEST_CREATED)
rekeyed = raw_topic(topics.REKEYED)
dead_letter = raw_topic(topics.DEAD_LETTER)
customer_updated = raw_topic(topics.CUSTOMER_UPDATED)
customer_created = raw_topic(topics.CUSTOMER_CREATED)
import_initiated = raw_topic(topics.IMPORT_INITIATED)
customer_commands = raw_topic(topics.CUSTOMER_COMMANDS)
settings_commands = raw_topic(topics.SETTINGS_COMMANDS)
updates = raw_topic(topics.UPDATES)
import_jobs = raw_topic(topics.IMPORT_JOBS)
import_commands = raw_topic(topics.IMPORT_COMMANDS)
merchant_installed = raw_topic(topics.MERCHANT_INSTALLED)
shopify_webhooks = raw_topic(topics.SHOPIFY_WEBHOOKS)
gdpr_export_ready = raw_topic(topics.GDPR_EXPORT_READY)
table_purges = raw_topic(topics.TABLE_PURGES)


BY_NAME: dict[str, TopicT] = {
    topic.get_topic_name(): topic for topic in list(globals().values()) if isinstance(topic, TopicT)
}


class TopicPublisher:
    """The EventPublisher port (core_app/services/ports.py) on the worker's Faust producer."""

    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, bytes] | None = None
    ) -> None:
        await BY_NAME[topic].send(key=key, value=value, headers=headers)
