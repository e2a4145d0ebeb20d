"""`core fake-shopify`: the fake shop as a process (what `core dev --fake-shopify` starts).

It uses the app's SHOPIFY_API_KEY / SHOPIFY_API_SECRET, sends compliance webhooks to
SHOPIFY_APP_URL, and serves `GET /_fake/shops/{shop}/install`, the "Install app" button: a redirect
to the app's signed install link, which starts the real OAuth flow against this fake.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlencode

from aiohttp import web

from core_app.devtools.fake_shopify.server import FakeShopify, running_fake_shopify
from core_app.domain.errors import ValidationFailed
from core_app.domain.shopify import parse_shop, sign_query
from core_app.settings import Settings


def install_button(fake: FakeShopify, app_url: str) -> web.RouteDef:
    async def install(request: web.Request) -> web.StreamResponse:
        try:
            shop = parse_shop(request.match_info["shop"])
        except ValidationFailed:
            raise web.HTTPNotFound() from None
        params = {"shop": shop, "timestamp": str(int(time.time()))}
        params["hmac"] = sign_query(fake.api_secret, params)
        raise web.HTTPFound(f"{app_url}/shopify/install?{urlencode(params)}")

    return web.get("/_fake/shops/{shop}/install", install)


async def serve(settings: Settings, host: str, port: int, customers: int) -> None:
    app_url = settings.shopify_app_url.rstrip("/")
    fake = FakeShopify(
        settings.shopify_api_key,
        settings.shopify_api_secret.get_secret_value(),
        customers=customers,
        api_version=settings.shopify_api_version,
        app_url=app_url,
    )
    fake.extra_routes.append(install_button(fake, app_url))
    async with running_fake_shopify(fake, host, port):
        print(
            f"fake shopify on {fake.url}: SHOPIFY_SHOP_URL={fake.shop_url_template()}\n"
            f"  install into a fake shop: open {fake.url}/_fake/shops/demo.myshopify.com/install",
            flush=True,
        )
        await asyncio.Event().wait()


def run(settings: Settings, host: str, port: int, customers: int) -> int:
    if settings.core_env == "production":
        raise SystemExit("core fake-shopify is a development tool")
    try:
        asyncio.run(serve(settings, host, port, customers))
    except KeyboardInterrupt:
        pass
    return 0
