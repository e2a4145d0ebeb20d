"""`core.shopify.webhooks` -> the work of each verified Shopify webhook (uninstall, redact).

A transient failure (PostgreSQL, Redis, Kafka) is retried until it passes; a delivery that cannot be
read or keeps failing otherwise is dead-lettered with its reason, never dropped.
"""

from __future__ import annotations

import logging

from faust.types import StreamT

from agents.dead_letter import send_to_dead_letter
from core_app.app import app
from core_app.retry import infra_retry
from core_app.security.crypto import DecryptionFailed
from core_app.services.shopify_metrics import webhooks_processed
from core_app.services.shopify_webhooks import WebhookDelivery, process_webhook
from core_app.shopify_wiring import shopify_deps
from core_app.stream_topics import shopify_webhooks

log = logging.getLogger(__name__)


@app.agent(shopify_webhooks, name="shopify-webhooks")
async def shopify_webhooks_agent(stream: StreamT) -> None:
    async for event in stream.events():
        deps = shopify_deps()
        try:
            delivery = WebhookDelivery.from_message(deps.kek, event.value)
        except (ValueError, TypeError, KeyError, DecryptionFailed) as exc:
            await send_to_dead_letter(event, "bad_body", f"not a webhook delivery: {exc}")
            continue
        try:
            await infra_retry()(process_webhook, deps, delivery)
        except Exception as exc:
            log.exception("webhook not processed", extra={"topic": delivery.topic, "shop": delivery.shop})
            webhooks_processed.labels(delivery.topic, "failed").inc()
            await send_to_dead_letter(event, "failed", f"{type(exc).__name__}: {exc}")
