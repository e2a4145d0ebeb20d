"""Token exchange for embedded apps: the app's page inside the Shopify admin sends its session token
(a JWT Shopify signs with the app's secret), and the service exchanges it for an offline token,
with no OAuth redirect (Shopify-managed installs).

The session token must be HS256 under SHOPIFY_API_SECRET, for this app (`aud` = SHOPIFY_API_KEY),
current (`exp`, `nbf`, 10 s leeway), for a valid shop (`dest` = https://{shop}, `iss` = its
/admin), and new: its `jti` is remembered in Redis until it expires, so a replayed token is 401.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt

from core_app.domain.errors import Unavailable, ValidationFailed
from core_app.domain.shopify import parse_scopes, parse_shop
from core_app.security.errors import Unauthenticated
from core_app.services.shopify_app import ShopifyDeps
from core_app.services.shopify_install import finish_install

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
OFFLINE_TOKEN = "urn:shopify:params:oauth:token-type:offline-access-token"
LEEWAY = 10.0


def verify_session_token(deps: ShopifyDeps, authorization: str | None) -> tuple[str, dict[str, Any]]:
    """(shop, claims) of a valid session token, else Unauthenticated."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("Authorization: a Bearer session token is required", field="Authorization")
    try:
        claims = jwt.decode(
            token,
            deps.app.api_secret,
            algorithms=["HS256"],
            audience=deps.app.api_key,
            leeway=LEEWAY,
            options={"require": ["exp", "nbf", "iss", "dest", "aud", "jti"]},
        )
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"session token: {exc}", field="Authorization") from None
    try:
        shop = parse_shop(urlsplit(str(claims["dest"])).hostname or "", "dest")
    except ValidationFailed:
        raise Unauthenticated("session token: dest is not a shop", field="Authorization") from None
    if claims["dest"] != f"https://{shop}" or claims["iss"] != f"https://{shop}/admin":
        raise Unauthenticated("session token: iss and dest do not name one shop", field="Authorization")
    return shop, claims


async def exchange_session(deps: ShopifyDeps, authorization: str | None) -> dict[str, Any]:
    shop, claims = verify_session_token(deps, authorization)
    ttl = max(1, int(float(claims["exp"]) + LEEWAY - time.time()))
    if not await deps.redis.set(deps.key(shop, "session_jti", str(claims["jti"])), "1", nx=True, ex=ttl):
        raise Unauthenticated("session token: already used", field="Authorization")
    body = {
        "client_id": deps.app.api_key,
        "client_secret": deps.app.api_secret,
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": (authorization or "").partition(" ")[2],
        "subject_token_type": ID_TOKEN,
        "requested_token_type": OFFLINE_TOKEN,
    }
    try:
        async with deps.http.post(f"{deps.app.shop_url(shop)}/admin/oauth/access_token", json=body) as r:
            status, answer = r.status, await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise Unavailable(f"Shopify did not exchange the session token: {type(exc).__name__}") from None
    if status >= 500:
        raise Unavailable(f"Shopify answered {status} to the token exchange")
    if status != 200 or not isinstance(answer, dict) or not answer.get("access_token"):
        raise Unauthenticated("session token: Shopify refused the exchange", field="Authorization")
    scopes = parse_scopes(str(answer.get("scope", "")))
    return await finish_install(deps, shop, str(answer["access_token"]), scopes)
