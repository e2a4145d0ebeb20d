"""How the composition root builds the Shopify collaborators (`Components.shopify`): one
`ShopifyDeps` per worker over the runtime's pool, Redis and codec and the Faust producer."""

from __future__ import annotations

from typing import Any

import aiohttp

from core_app.events.codec import EventCodec
from core_app.runtime import Runtime
from core_app.services.ports import EventPublisher
from core_app.services.shopify_app import Publish, ShopifyApp, ShopifyDeps, kek_of
from core_app.stream_topics import BY_NAME


class AckedPublisher:
    """EventPublisher that returns once the broker has the record: a Shopify delivery is answered
    200 (and an install completes) only after its hand-off is durable."""

    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, bytes] | None = None
    ) -> None:
        sent = await BY_NAME[topic].send(key=key, value=value, headers=headers)
        await sent


def record_publisher(codec: EventCodec, publisher: EventPublisher) -> Publish:
    """A dict is Avro-encoded with the topic's contract, bytes are sent as they are."""

    async def publish(topic: str, key: str, value: dict[str, Any] | bytes) -> None:
        payload = value if isinstance(value, bytes) else await codec.encode(topic, value)
        await publisher.publish(topic, key, payload)

    return publish


def build_shopify_deps(runtime: Runtime, publisher: EventPublisher) -> ShopifyDeps:
    """Needs a running event loop (the HTTP client session)."""
    settings = runtime.settings
    return ShopifyDeps(
        app=ShopifyApp.from_settings(settings),
        pool=runtime.pool,
        redis=runtime.redis,
        redis_prefix=settings.redis_key_prefix,
        kek=kek_of(settings),
        http=aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.shopify_http_timeout)),
        publish=record_publisher(runtime.codec, publisher),
    )
