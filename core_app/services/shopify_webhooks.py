"""Shopify webhooks: accept fast (`accept_webhook`, the HTTP handler's use case), work later
(`process_webhook`, the agent's).

Accepting: the HMAC of the raw body (401 when missing or wrong), the shop, the delivery id and the
JSON body are checked; a delivery triggered more than SHOPIFY_WEBHOOK_MAX_AGE ago is stale and
dropped; a delivery id seen before is answered 200 and dropped (Shopify retries for 4 h and may
redeliver); the rest goes to `core.shopify.webhooks` and Shopify gets its 200 at once. Should the
hand-off fail, the id is released and Shopify gets a 503, so its retry is processed.

Processing: `app/uninstalled` marks the merchant uninstalled and discards its token (ignored when it
predates the latest install); `customers/redact` becomes a `gdpr_request.created` REDACT for the
customer with that email, so the existing erasure path does the work; `shop/redact` purges the
shop (core_app/services/shopify_purge.py).
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core_app import topics
from core_app.domain.errors import ValidationFailed
from core_app.domain.shopify import parse_shop, verify_body
from core_app.security.audit import write_audit_async
from core_app.security.envelope import open_secret, seal_secret
from core_app.security.errors import Unauthenticated
from core_app.services import merchants
from core_app.services.shopify_app import COMPLIANCE_TOPICS, SUBSCRIBED_TOPICS, ShopifyDeps
from core_app.services.shopify_metrics import webhooks_processed, webhooks_received
from core_app.services.shopify_purge import purge_shop

log = logging.getLogger(__name__)

KNOWN_TOPICS = frozenset(SUBSCRIBED_TOPICS + COMPLIANCE_TOPICS)
DEDUPE_MARGIN = 3600.0  # s: ids are remembered this much longer than a delivery can be fresh
_NAMESPACE = uuid.UUID("0b8f0c36-8e8a-4f53-9a53-3f7c7c5d2b17")
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
        gone = await merchants.uninstall(deps.pool, delivery.shop, "shopify:webhook", triggered_at=when)
        result = "done" if gone is not None else "skipped"
    elif delivery.topic == "customers/redact":
        result = await _redact(deps, delivery)
    elif delivery.topic == "shop/redact":
        purged = await purge_shop(deps, delivery.shop, delivery.webhook_id)
        result = "done" if purged is not None else "skipped"
    elif delivery.topic == "customers/data_request":
        result = await _record_data_request(deps, delivery)
    else:
        result = "skipped"  # customers/create|update: not applied yet
    webhooks_processed.labels(delivery.topic, result).inc()
    return result


async def _record_data_request(deps: ShopifyDeps, delivery: WebhookDelivery) -> str:
    """The export is not built yet (README "Shopify"): the request is kept, without PII, in
    `audit_logs` with its 30-day deadline, counted, and logged, so an operator serves it in time."""
    merchant = await merchants.find_merchant(deps.pool, delivery.shop)
    customer = delivery.payload.get("customer") or {}
    request = delivery.payload.get("data_request") or {}
    received = datetime.now(UTC)
    await write_audit_async(
        deps.pool,
        merchant_id=merchant["id"] if merchant else None,
        actor="shopify:webhook",
        action="gdpr.data_request.received",
        entity_type="gdpr_request",
        entity_id=str(request.get("id") or delivery.webhook_id),
        details={
            "shop": delivery.shop,
            "shopify_customer_id": customer.get("id") if isinstance(customer, dict) else None,
            "deadline": (received + timedelta(days=30)).isoformat(timespec="seconds"),
            "served": False,
        },
    )
    log.warning("GDPR data request recorded, not served automatically", extra={"shop": delivery.shop})
    return "recorded"


async def _customer_by_email(deps: ShopifyDeps, merchant_id: str, email: str) -> str | None:
    async with deps.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT id::text FROM customers WHERE merchant_id = %s AND email_hash ="
            " encode(hmac(lower(btrim(%s)), current_setting('core.email_hash_key'), 'sha256'), 'hex')",
            (merchant_id, email),
        )
        row = await cur.fetchone()
    return row[0] if row else None


async def _redact(deps: ShopifyDeps, delivery: WebhookDelivery) -> str:
    merchant = await merchants.find_merchant(deps.pool, delivery.shop)
    customer = delivery.payload.get("customer") or {}
    email = customer.get("email") if isinstance(customer, dict) else None
    if merchant is None or not isinstance(email, str) or "@" not in email:
        return "skipped"
    customer_id = await _customer_by_email(deps, merchant["id"], email)
    if customer_id is None:
        return "skipped"  # never imported, or already erased (the hash is gone with the email)
    request_id = str(uuid.uuid5(_NAMESPACE, f"{delivery.shop}:{delivery.webhook_id}"))
    record = {
        "event_id": request_id,
        "merchant_id": merchant["id"],
        "customer_id": customer_id,
        "request_id": request_id,
        "request_type": "REDACT",
        "requested_by": "shopify:customers/redact",
        "occurred_at": datetime.now(UTC),
    }
    await deps.publish(topics.GDPR_REQUEST_CREATED, f"{merchant['id']}:{customer_id}", record)
    return "done"
