"""What the Shopify use cases share: the app's configuration, their dependencies, Admin API calls.

`ShopifyDeps` is built once per worker by the composition root (`Components.shopify`,
core_app/shopify_wiring.py) and passed to every use case: the unit tests pass fakes
(tests/unit/fakes.py), the integration tests the fake shop with real PostgreSQL, Redis and Kafka.
Redis keys carry the shop in a hash tag (`shopify:{x.myshopify.com}:...`), so every key of one shop
lands in one Redis Cluster slot and multi-key scripts stay legal there.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import aiopg
from redis.asyncio import Redis

from core_app.domain.errors import Unavailable
from core_app.domain.shopify import parse_scopes
from core_app.security.crypto import kek_from_setting
from core_app.services.merchants import PgMerchantStore
from core_app.services.ports import MerchantStore

if TYPE_CHECKING:  # built from this module's Publish: a type-only back-reference
    from core_app.services.gdpr_deps import GdprDeps
    from core_app.services.gdpr_ports import CustomerWriter
from core_app.settings import Settings

log = logging.getLogger(__name__)

# Topics the app subscribes to at install; the three compliance topics are app configuration in
# the Partner dashboard (shopify.app.toml), not subscriptions (README "Shopify").
SUBSCRIBED_TOPICS = ("app/uninstalled", "customers/create", "customers/update")
COMPLIANCE_TOPICS = ("customers/data_request", "customers/redact", "shop/redact")

# (topic, key, value): a dict is Avro-encoded with the topic's contract, bytes are sent as they are
# (internal JSON topics). Returns once the broker has the record.
Publish = Callable[[str, str, dict[str, Any] | bytes], Awaitable[None]]


@dataclass(frozen=True)
class ShopifyApp:
    api_key: str
    api_secret: str
    scopes: tuple[str, ...]
    app_url: str
    shop_url_template: str
    api_version: str
    state_ttl: int
    webhook_max_age: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ShopifyApp:
        return cls(
            api_key=settings.shopify_api_key,
            api_secret=settings.shopify_api_secret.get_secret_value(),
            scopes=parse_scopes(settings.shopify_scopes),
            app_url=settings.shopify_app_url.rstrip("/"),
            shop_url_template=settings.shopify_shop_url,
            api_version=settings.shopify_api_version,
            state_ttl=settings.shopify_state_ttl,
            webhook_max_age=settings.shopify_webhook_max_age,
        )

    def shop_url(self, shop: str) -> str:
        """Base URL of a validated shop (https://{shop} in production)."""
        return self.shop_url_template.replace("{shop}", shop)

    def admin_url(self, shop: str, resource: str) -> str:
        return f"{self.shop_url(shop)}/admin/api/{self.api_version}/{resource}"

    @property
    def redirect_uri(self) -> str:
        return f"{self.app_url}/shopify/callback"

    def webhook_address(self, topic: str) -> str:
        return f"{self.app_url}/shopify/webhooks/{topic}"


@dataclass
class ShopifyDeps:
    app: ShopifyApp
    pool: aiopg.Pool
    redis: Redis
    redis_prefix: str
    kek: bytes
    http: aiohttp.ClientSession
    publish: Publish
    # The merchant store; on PostgreSQL over `pool` unless given (the unit tests' fake).
    store: MerchantStore | None = field(default=None)
    # The GDPR use cases' collaborators (exports, request tracking, the purge) and the customer
    # write path (customers/create|update): wired by Components.shopify.
    gdpr: GdprDeps | None = field(default=None)
    customers: CustomerWriter | None = field(default=None)

    @property
    def merchants(self) -> MerchantStore:
        if self.store is None:
            self.store = PgMerchantStore(self.pool, self.kek)
        return self.store

    def key(self, shop: str, *parts: str) -> str:
        """A Redis key of one shop, hash-tagged by the shop domain (one Cluster slot per shop)."""
        return ":".join([f"{self.redis_prefix}shopify", f"{{{shop}}}", *parts])


def kek_of(settings: Settings) -> bytes:
    return kek_from_setting(settings.key_encryption_key.get_secret_value())


async def admin_post(deps: ShopifyDeps, shop: str, token: str, resource: str, body: dict[str, Any]) -> Any:
    """POST to the shop's Admin REST API; Unavailable on a transport error or a 5xx/429."""
    url = deps.app.admin_url(shop, resource)
    try:
        async with deps.http.post(url, json=body, headers={"X-Shopify-Access-Token": token}) as response:
            if response.status >= 500 or response.status == 429:
                raise Unavailable(f"Shopify answered {response.status} to {resource}")
            return response.status, await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise Unavailable(f"Shopify did not answer {resource}: {type(exc).__name__}") from None
