"""`core.shopify.webhooks` -> the work of each verified Shopify webhook (uninstall, customers/create
and update, the three GDPR compliance topics).

A transient failure (PostgreSQL, Redis, Kafka) is retried until it passes; a delivery that cannot be
read or keeps failing otherwise is dead-lettered with its reason, never dropped
(core_app/services/shopify_webhooks.handle_message, unit-tested with fakes).
"""

from __future__ import annotations

from functools import partial

from faust.types import StreamT

from agents.dead_letter import send_to_dead_letter
from core_app.app import app
from core_app.services.shopify_webhooks import handle_message
from core_app.stream_topics import shopify_webhooks


@app.agent(shopify_webhooks, name="shopify-webhooks")
async def shopify_webhooks_agent(stream: StreamT) -> None:
    async for event in stream.events():
        deps = app.components.shopify  # per event: rebuilt if its HTTP session was closed
        await handle_message(deps, event.value, partial(send_to_dead_letter, event))
