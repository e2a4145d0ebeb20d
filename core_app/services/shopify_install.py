"""The install flow: `GET /shopify/install` -> Shopify's grant screen -> `GET /shopify/callback`.

install: the query's HMAC (keyed with SHOPIFY_API_SECRET), a fresh timestamp and a strictly valid
shop are checked, then the merchant is sent to `https://{shop}/admin/oauth/authorize` with a `state`
nonce kept in Redis for SHOPIFY_STATE_TTL seconds. callback: HMAC and state again (the nonce is
consumed: one callback per install), the code is exchanged for the offline token, the merchant is
created or reactivated with the token envelope-encrypted, the webhooks are registered and
`merchant.installed` is published. The token is never logged.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp

from core_app import topics
from core_app.domain.errors import Unavailable, ValidationFailed
from core_app.domain.shopify import authorize_url, covers, parse_scopes, parse_shop, verify_query
from core_app.security.errors import Unauthenticated
from core_app.services.shopify_app import SUBSCRIBED_TOPICS, ShopifyDeps, admin_post

log = logging.getLogger(__name__)

MAX_CLOCK_SKEW = 300.0  # s: an install link older than this (or from the future) is refused
ACTOR = "shopify:oauth"


def verified(deps: ShopifyDeps, raw_query: str) -> dict[str, str]:
    """The query's values when Shopify signed it, else 401 (HMAC) or 400 (another field)."""
    try:
        params = verify_query(deps.app.api_secret, raw_query)
    except ValidationFailed as exc:
        raise Unauthenticated(f"hmac: {exc.reason}", field="hmac") from None
    parse_shop(params.get("shop"))
    try:
        stamp = float(params.get("timestamp", ""))
    except ValueError:
        raise ValidationFailed("timestamp", "must be unix seconds") from None
    if abs(time.time() - stamp) > max(MAX_CLOCK_SKEW, deps.app.state_ttl):
        raise Unauthenticated("timestamp: the request is too old or from the future", field="timestamp")
    return params


async def begin_install(deps: ShopifyDeps, raw_query: str) -> str:
    """Where to redirect the merchant (the shop's grant screen)."""
    params = verified(deps, raw_query)
    shop = params["shop"]
    state = secrets.token_urlsafe(24)
    await deps.redis.set(deps.key(shop, "state", state), "1", ex=deps.app.state_ttl, nx=True)
    return authorize_url(
        deps.app.shop_url(shop), deps.app.api_key, deps.app.scopes, deps.app.redirect_uri, state
    )


async def exchange_code(deps: ShopifyDeps, shop: str, code: str) -> tuple[str, tuple[str, ...]]:
    """(offline token, granted scopes) for an authorization code."""
    url = f"{deps.app.shop_url(shop)}/admin/oauth/access_token"
    body = {"client_id": deps.app.api_key, "client_secret": deps.app.api_secret, "code": code}
    try:
        async with deps.http.post(url, json=body) as response:
            answer = await response.json(content_type=None)
            status = response.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise Unavailable(f"Shopify did not exchange the code: {type(exc).__name__}") from None
    if status >= 500:
        raise Unavailable(f"Shopify answered {status} to the code exchange")
    if status != 200 or not isinstance(answer, dict) or not answer.get("access_token"):
        raise Unauthenticated("code: Shopify refused the authorization code", field="code")
    return str(answer["access_token"]), parse_scopes(str(answer.get("scope", "")))


async def register_webhooks(deps: ShopifyDeps, shop: str, token: str) -> None:
    for topic in SUBSCRIBED_TOPICS:
        hook = {"webhook": {"topic": topic, "address": deps.app.webhook_address(topic), "format": "json"}}
        status, answer = await admin_post(deps, shop, token, "webhooks.json", hook)
        # 422 "address for this topic has already been taken": registered by an earlier install
        if status not in (200, 201) and not (status == 422 and "taken" in str(answer)):
            raise Unavailable(f"Shopify refused the {topic} webhook ({status})")


async def complete_install(deps: ShopifyDeps, raw_query: str) -> dict[str, Any]:
    params = verified(deps, raw_query)
    shop, state, code = params["shop"], params.get("state", ""), params.get("code", "")
    if not state or await deps.redis.getdel(deps.key(shop, "state", state)) is None:
        raise Unauthenticated("state: unknown, expired or already used", field="state")
    if not code:
        raise ValidationFailed("code", "is required")
    token, scopes = await exchange_code(deps, shop, code)
    return await finish_install(deps, shop, token, scopes)


async def finish_install(deps: ShopifyDeps, shop: str, token: str, scopes: tuple[str, ...]) -> dict[str, Any]:
    """With an offline token in hand (OAuth code or token exchange): merchant, webhooks, event."""
    if not covers(scopes, deps.app.scopes):
        raise ValidationFailed("scope", f"the shop granted {','.join(scopes)}; the app needs more")
    merchant, reinstalled = await deps.merchants.install(shop, token, scopes, ACTOR)
    await register_webhooks(deps, shop, token)
    record = {
        "event_id": str(uuid.uuid4()),
        "merchant_id": merchant["id"],
        "shop_domain": shop,
        "scopes": list(scopes),
        "reinstalled": reinstalled,
        "installed_at": datetime.now(UTC),
    }
    await deps.publish(topics.MERCHANT_INSTALLED, merchant["id"], record)
    log.info(
        "shop installed", extra={"shop": shop, "merchant_id": merchant["id"], "reinstalled": reinstalled}
    )
    return merchant | {"reinstalled": reinstalled}
