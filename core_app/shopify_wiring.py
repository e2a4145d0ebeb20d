"""One `ShopifyDeps` per worker, built from the runtime: what views/shopify.py and the webhook agent
pass to the Shopify use cases. Closed with the web app (views/shopify.py `install_cleanup`)."""

from __future__ import annotations

from typing import Any

import aiohttp

from core_app import topics
from core_app.runtime import Runtime, get_runtime
from core_app.services.shopify_app import Publish, ShopifyApp, ShopifyDeps, kek_of

_deps: ShopifyDeps | None = None


def kafka_publisher(runtime: Runtime) -> Publish:
    from core_app import stream_topics as faust_topics

    channels = {
        topics.MERCHANT_INSTALLED: faust_topics.merchant_installed,
        topics.GDPR_REQUEST_CREATED: faust_topics.gdpr_request_created,
        topics.SHOPIFY_WEBHOOKS: faust_topics.shopify_webhooks,
    }

    async def publish(topic: str, key: str, value: dict[str, Any] | bytes) -> None:
        payload = value if isinstance(value, bytes) else await runtime.codec.encode(topic, value)
        sent = await channels[topic].send(key=key, value=payload)
        await sent  # the broker acknowledged it: only then is the work handed off

    return publish


def shopify_deps() -> ShopifyDeps:
    global _deps
    runtime = get_runtime()
    if _deps is None or _deps.pool is not runtime.pool or _deps.http.closed:
        settings = runtime.settings
        _deps = ShopifyDeps(
            app=ShopifyApp.from_settings(settings),
            pool=runtime.pool,
            redis=runtime.redis,
            redis_prefix=settings.redis_key_prefix,
            kek=kek_of(settings),
            http=aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.shopify_http_timeout)),
            publish=kafka_publisher(runtime),
        )
    return _deps


async def close_shopify_deps() -> None:
    global _deps
    if _deps is not None:
        await _deps.http.close()
        _deps = None
