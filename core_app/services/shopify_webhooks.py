"""Shopify webhooks: accept fast (`accept_webhook`, the HTTP handler's use case), work later
(`process_webhook`, the agent's).

Accepting: the HMAC of the raw body (401 when missing or wrong), the shop, the delivery id and the
JSON body are checked; a delivery triggered more than SHOPIFY_WEBHOOK_MAX_AGE ago is stale and
dropped; a delivery id seen before is answered 200 and dropped (Shopify retries for 4 h and may
redeliver); the rest goes to `core.shopify.webhooks` and Shopify gets its 200 at once. Should the
hand-off fail, the id is released and Shopify gets a 503, so its retry is processed.

Processing: `app/uninstalled` marks the merchant uninstalled and discards its token (ignored when it
predates the latest install); `customers/create` and `customers/update` go through the customer
write path (core_app/services/shopify_customers.py); the three compliance topics are tracked GDPR
requests (core_app/services/shopify_compliance.py): the data export, the customer's erasure, the
shop's purge.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from core_app import topics
from core_app.domain.errors import ValidationFailed
from core_app.domain.shopify import parse_shop, verify_body
from core_app.retry import infra_retry
from core_app.security.crypto import DecryptionFailed
from core_app.security.envelope import open_secret, seal_secret
from core_app.security.errors import Unauthenticated
from core_app.services.shopify_app import COMPLIANCE_TOPICS, SUBSCRIBED_TOPICS, ShopifyDeps
from core_app.services.shopify_compliance import redact_shop, request_redaction, serve_data_request
from core_app.services.shopify_customers import sync_customer
from core_app.services.shopify_metrics import webhooks_processed, webhooks_received

log = logging.getLogger(__name__)

KNOWN_TOPICS = frozenset(SUBSCRIBED_TOPICS + COMPLIANCE_TOPICS)
DEDUPE_MARGIN = 3600.0  # s: ids are remembered this much longer than a delivery can be fresh
PAYLOAD_PURPOSE = "shopify_webhook"


@dataclass(frozen=True)
class WebhookDelivery:
    topic: str
    shop: str
    webhook_id: str
    triggered_at: float | None
    payload: dict[str, Any]

    def to_message(self, kek: bytes) -> bytes:
        """JSON for `core.shopify.webhooks`, the payload sealed: webhook bodies carry emails, names
        and addresses, and no topic may hold those in plaintext (envelope per delivery, D123)."""
        wrapped, sealed = seal_secret(kek, PAYLOAD_PURPOSE, self.webhook_id, json.dumps(self.payload))
        head = asdict(self) | {"payload": None}
        sealed_parts = {
            "key": base64.b64encode(wrapped).decode(),
            "sealed": base64.b64encode(sealed).decode(),
        }
        return json.dumps(head | {"payload_sealed": sealed_parts}).encode()

    @classmethod
    def from_message(cls, kek: bytes, raw: bytes) -> WebhookDelivery:
        data = json.loads(raw)
        parts = data.pop("payload_sealed")
        payload = open_secret(
            kek,
            PAYLOAD_PURPOSE,
            data["webhook_id"],
            base64.b64decode(parts["key"]),
            base64.b64decode(parts["sealed"]),
        )
        return cls(**(data | {"payload": json.loads(payload)}))


def _triggered_at(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValidationFailed("X-Shopify-Triggered-At", "must be an ISO 8601 time") from None


def parse_delivery(secret: str, topic: str, headers: Mapping[str, str], body: bytes) -> WebhookDelivery:
    """The verified delivery, or Unauthenticated (HMAC) / ValidationFailed naming the header."""
    if not verify_body(secret, body, headers.get("X-Shopify-Hmac-Sha256")):
        raise Unauthenticated("X-Shopify-Hmac-Sha256: missing or wrong", field="X-Shopify-Hmac-Sha256")
    if headers.get("X-Shopify-Topic", topic) != topic:
        raise ValidationFailed("X-Shopify-Topic", "does not match the URL")
    shop = parse_shop(headers.get("X-Shopify-Shop-Domain"), "X-Shopify-Shop-Domain")
    webhook_id = headers.get("X-Shopify-Webhook-Id", "")
    if not 1 <= len(webhook_id) <= 128:
        raise ValidationFailed("X-Shopify-Webhook-Id", "is required")
    try:
        payload = json.loads(body)
    except ValueError:
        raise ValidationFailed("body", "must be a JSON object") from None
    if not isinstance(payload, dict):
        raise ValidationFailed("body", "must be a JSON object")
    return WebhookDelivery(
        topic, shop, webhook_id, _triggered_at(headers.get("X-Shopify-Triggered-At")), payload
    )


async def accept_webhook(deps: ShopifyDeps, topic: str, headers: Mapping[str, str], body: bytes) -> str:
    """`accepted`, `duplicate`, `stale` or `ignored` (all answered 200)."""
    try:
        delivery = parse_delivery(deps.app.api_secret, topic, headers, body)
    except (Unauthenticated, ValidationFailed):
        webhooks_received.labels(topic if topic in KNOWN_TOPICS else "other", "refused").inc()
        raise
    outcome = await _hand_off(deps, delivery)
    webhooks_received.labels(topic if topic in KNOWN_TOPICS else "other", outcome).inc()
    return outcome


async def _hand_off(deps: ShopifyDeps, delivery: WebhookDelivery) -> str:
    if delivery.topic not in KNOWN_TOPICS:
        return "ignored"
    max_age = deps.app.webhook_max_age
    if delivery.triggered_at is not None and time.time() - delivery.triggered_at > max_age:
        log.warning("stale webhook", extra={"shop": delivery.shop, "topic": delivery.topic})
        return "stale"
    seen = deps.key(delivery.shop, "webhook", delivery.webhook_id)
    if not await deps.redis.set(seen, "1", nx=True, ex=int(max_age + DEDUPE_MARGIN)):
        return "duplicate"
    try:
        await deps.publish(topics.SHOPIFY_WEBHOOKS, delivery.shop, delivery.to_message(deps.kek))
    except Exception:
        await deps.redis.delete(seen)  # not handed off: Shopify's retry must be processed
        raise
    return "accepted"


async def process_webhook(deps: ShopifyDeps, delivery: WebhookDelivery) -> str:
    """Do the work of one accepted delivery; returns what happened (for metrics and logs)."""
    if delivery.topic == "app/uninstalled":
        stamp = delivery.triggered_at
        when = datetime.fromtimestamp(stamp, UTC).replace(tzinfo=None) if stamp is not None else None
        gone = await deps.merchants.uninstall(delivery.shop, "shopify:webhook", triggered_at=when)
        result = "done" if gone is not None else "skipped"
    elif delivery.topic in ("customers/create", "customers/update"):
        result = await sync_customer(deps, delivery.payload, delivery.shop)
    else:
        result = await COMPLIANCE[delivery.topic](deps, delivery)
    webhooks_processed.labels(delivery.topic, result).inc()
    return result


COMPLIANCE = {
    "customers/data_request": serve_data_request,
    "customers/redact": request_redaction,
    "shop/redact": redact_shop,
}


# (reason, detail): dead-letters the record being handled (the agent binds it to its event).
Reject = Callable[[str, str], Awaitable[None]]


async def handle_message(deps: ShopifyDeps, raw: bytes, reject: Reject) -> str:
    """The agent's work on one `core.shopify.webhooks` record: a record that cannot be read, or a
    delivery that keeps failing once transient errors are retried, is rejected with its reason,
    never dropped. Returns the result (`bad_body` and `failed` for the rejected ones)."""
    try:
        delivery = WebhookDelivery.from_message(deps.kek, raw)
    except (ValueError, TypeError, KeyError, DecryptionFailed) as exc:
        await reject("bad_body", f"not a webhook delivery: {exc}")
        return "bad_body"
    try:
        return await infra_retry()(process_webhook, deps, delivery)
    except Exception as exc:
        log.exception("webhook not processed", extra={"topic": delivery.topic, "shop": delivery.shop})
        webhooks_processed.labels(delivery.topic, "failed").inc()
        await reject("failed", f"{type(exc).__name__}: {exc}")
        return "failed"
