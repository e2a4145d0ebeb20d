"""The fake's webhook sender: signs each body like Shopify, retries a delivery that is not answered
2xx (Shopify retries 8 times over 4 hours; the fake's delays are scaled down), and can redeliver a
delivery with the same `X-Shopify-Webhook-Id`, which real Shopify also does."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from core_app.devtools.fake_shopify.data import iso
from core_app.domain.shopify import sign_body


@dataclass
class Delivery:
    webhook_id: str
    topic: str
    body: bytes
    statuses: list[int] = field(default_factory=list)  # one per attempt; 0 = no answer

    @property
    def delivered(self) -> bool:
        return bool(self.statuses) and 200 <= self.statuses[-1] < 300


class WebhookSender:
    def __init__(
        self, secret: str, api_version: str, attempts: int = 8, first_delay: float = 0.2, timeout: float = 5.0
    ) -> None:
        self.secret = secret
        self.api_version = api_version
        self.attempts = attempts
        self.first_delay = first_delay
        self.timeout = timeout
        self.sent: list[Delivery] = []

    def headers(self, delivery: Delivery, shop: str, triggered_at: float) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-Shopify-Topic": delivery.topic,
            "X-Shopify-Hmac-Sha256": sign_body(self.secret, delivery.body),
            "X-Shopify-Shop-Domain": shop,
            "X-Shopify-Webhook-Id": delivery.webhook_id,
            "X-Shopify-Event-Id": str(uuid.uuid5(uuid.NAMESPACE_URL, delivery.webhook_id)),
            "X-Shopify-Triggered-At": iso(triggered_at),
            "X-Shopify-API-Version": self.api_version,
        }

    async def deliver(
        self,
        address: str,
        topic: str,
        shop: str,
        payload: dict[str, Any],
        *,
        webhook_id: str | None = None,
        triggered_at: float | None = None,
    ) -> Delivery:
        """POST until a 2xx or the attempts run out, doubling the delay each time."""
        body = json.dumps(payload, ensure_ascii=False).encode()
        delivery = Delivery(webhook_id or str(uuid.uuid4()), topic, body)
        stamp = time.time() if triggered_at is None else triggered_at
        delay = self.first_delay
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as http:
            for attempt in range(self.attempts):
                try:
                    headers = self.headers(delivery, shop, stamp)
                    async with http.post(address, data=body, headers=headers) as response:
                        delivery.statuses.append(response.status)
                except (aiohttp.ClientError, TimeoutError):
                    delivery.statuses.append(0)
                if delivery.delivered or attempt == self.attempts - 1:
                    break
                await asyncio.sleep(delay)
                delay *= 2
        self.sent.append(delivery)
        return delivery

    async def redeliver(self, address: str, shop: str, delivery: Delivery) -> Delivery:
        """The same delivery again (same id and body), as Shopify does after a lost answer."""
        return await self.deliver(
            address, delivery.topic, shop, json.loads(delivery.body), webhook_id=delivery.webhook_id
        )
