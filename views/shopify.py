"""`/shopify/*`: the app's install flow and Shopify's webhooks. Public to the API-key layer
(core_app/security/http.py): each request is authenticated by Shopify's HMAC instead.

GET  /shopify/install?shop=&timestamp=&hmac=         302 to the shop's grant screen (401 bad HMAC)
GET  /shopify/callback?code=&shop=&state=&timestamp=&hmac=  302 to the app in the shop's admin
POST /shopify/session  (Authorization: Bearer <session token>)  200 the merchant (token exchange)
POST /shopify/webhooks/{topic}                        200 {"status": accepted|duplicate|stale|ignored}
"""

from __future__ import annotations

from aiohttp import web

from core_app.services.shopify_install import begin_install, complete_install
from core_app.services.shopify_metrics import installs
from core_app.services.shopify_session import exchange_session
from core_app.services.shopify_webhooks import accept_webhook
from views.wiring import COMPONENTS, components_of

WEBHOOK_PATH = "/shopify/webhooks/{topic:[a-z_]+/[a-z_]+}"
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


async def install(request: web.Request) -> web.StreamResponse:
    location = await begin_install(components_of(request).shopify, request.rel_url.raw_query_string)
    raise web.HTTPFound(location, headers=NO_STORE)


async def callback(request: web.Request) -> web.StreamResponse:
    deps = components_of(request).shopify
    merchant = await complete_install(deps, request.rel_url.raw_query_string)
    installs.labels("reinstall" if merchant["reinstalled"] else "install").inc()
    raise web.HTTPFound(
        f"{deps.app.shop_url(merchant['shop_domain'])}/admin/apps/{deps.app.api_key}", headers=NO_STORE
    )


async def session(request: web.Request) -> web.Response:
    merchant = await exchange_session(components_of(request).shopify, request.headers.get("Authorization"))
    installs.labels("reinstall" if merchant["reinstalled"] else "install").inc()
    keys = ("id", "shop_domain", "status", "scopes", "reinstalled")
    return web.json_response({key: merchant[key] for key in keys}, headers=NO_STORE)


async def webhook(request: web.Request) -> web.Response:
    body = await request.read()  # the raw bytes: the HMAC is over them, not over re-encoded JSON
    topic = request.match_info["topic"]
    outcome = await accept_webhook(components_of(request).shopify, topic, request.headers, body)
    return web.json_response({"status": outcome})


def shopify_routes() -> list[tuple[str, str, object]]:
    return [
        ("GET", "/shopify/install", install),
        ("GET", "/shopify/callback", callback),
        ("POST", "/shopify/session", session),
        ("POST", WEBHOOK_PATH, webhook),
    ]


def install_cleanup(app: web.Application) -> None:
    async def close(web_app: web.Application) -> None:
        components = web_app.get(COMPONENTS)
        if components is not None:  # in-process tests never close their components
            await components.close_shopify()

    app.on_cleanup.append(close)
