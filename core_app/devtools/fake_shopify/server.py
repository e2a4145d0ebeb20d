"""The fake Shopify's HTTP server: OAuth, Admin REST and GraphQL, bulk files, webhooks, controls.

Routes (every shop under `/shops/{shop}`, so one server holds many shops):
  GET  /shops/{shop}/admin/oauth/authorize        the grant screen, approved at once: 302 to the app
  POST /shops/{shop}/admin/oauth/access_token     code (or session token) -> offline access token
  GET  /shops/{shop}/admin/api/{v}/customers.json limit<=250, page_info, updated_at_min; Link header
  GET  /shops/{shop}/admin/api/{v}/customers/count.json
  POST /shops/{shop}/admin/api/{v}/webhooks.json  subscribe a topic to an address
  POST /shops/{shop}/admin/api/{v}/graphql.json   customers connection, bulk operations
  GET  /_bulk/{file}?expires=                     a bulk operation's JSONL (403 once expired)
  POST /_fake/shops/{shop}/touch {"count": n}     change n customers now
  POST /_fake/shops/{shop}/uninstall              uninstall the app: sends app/uninstalled
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from core_app.devtools.fake_shopify import graphql
from core_app.devtools.fake_shopify.data import CustomerBook
from core_app.devtools.fake_shopify.limits import CostBucket, LeakyBucket
from core_app.devtools.fake_shopify.webhooks import Delivery, WebhookSender
from core_app.domain.errors import ValidationFailed
from core_app.domain.shopify import parse_shop, sign_query

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


@dataclass
class FakeShop:
    domain: str
    owner: FakeShopify
    book: CustomerBook
    scope: str = ""
    codes: dict[str, str] = field(default_factory=dict)  # unused authorization codes -> scope
    tokens: set[str] = field(default_factory=set)
    webhooks: dict[str, str] = field(default_factory=dict)  # topic -> address
    rest_bucket: LeakyBucket = field(default_factory=LeakyBucket)
    cost_bucket: CostBucket = field(default_factory=CostBucket)
    bulk: graphql.BulkOperation | None = None
    bulk_task: asyncio.Task[None] | None = None
    force_429: int = 0  # answer the next n REST calls 429 whatever the bucket (tests)
    rest_calls: int = 0


class FakeShopify:
    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        customers: int = 2_000,
        api_version: str = "2025-01",
        app_url: str | None = None,
        bulk_url_ttl: float = 7 * 86_400,
    ) -> None:
        self.api_key, self.api_secret, self.api_version = api_key, api_secret, api_version
        self.customers = customers
        self.app_url = app_url  # where compliance webhooks go (the app's configuration in Shopify)
        self.bulk_url_ttl = bulk_url_ttl
        self.bulk_fail_after: int | None = None
        self.app_scopes = "read_customers,write_customers,read_orders"  # granted by token exchange
        self.bulk_dir = Path(tempfile.mkdtemp(prefix="fake-shopify-bulk-"))
        self.shops: dict[str, FakeShop] = {}
        self.sender = WebhookSender(api_secret, api_version)
        self.extra_routes: list[web.RouteDef] = []  # e.g. the install button of `core fake-shopify`
        self.url = ""

    def shop(self, domain: str) -> FakeShop:
        if domain not in self.shops:
            self.shops[domain] = FakeShop(domain, self, CustomerBook.generate(self.customers))
        return self.shops[domain]

    def shop_url_template(self) -> str:
        """The value of SHOPIFY_SHOP_URL that points the service at this fake."""
        return f"{self.url}/shops/{{shop}}"

    def application(self) -> web.Application:
        app = web.Application()
        prefix, api = "/shops/{shop}", "/shops/{shop}/admin/api/{version}"
        app.router.add_get(f"{prefix}/admin/oauth/authorize", self.authorize)
        app.router.add_post(f"{prefix}/admin/oauth/access_token", self.access_token)
        app.router.add_get(f"{api}/customers.json", self.rest_customers)
        app.router.add_get(f"{api}/customers/count.json", self.rest_count)
        app.router.add_post(f"{api}/webhooks.json", self.rest_webhooks)
        app.router.add_post(f"{api}/graphql.json", self.graphql)
        app.router.add_get("/_bulk/{name}", self.bulk_file)
        app.router.add_post("/_fake/shops/{shop}/touch", self.control_touch)
        app.router.add_post("/_fake/shops/{shop}/uninstall", self.control_uninstall)
        app.add_routes(self.extra_routes)
        return app

    def _shop(self, request: web.Request) -> FakeShop:
        try:
            return self.shop(parse_shop(request.match_info["shop"]))
        except ValidationFailed:
            raise web.HTTPNotFound(text="There's no shop at this address") from None

    # OAuth -------------------------------------------------------------------------------------

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        shop = self._shop(request)
        query = request.query
        if query.get("client_id") != self.api_key:
            raise web.HTTPBadRequest(text="Oauth error invalid_request: The client_id is invalid")
        redirect = query.get("redirect_uri", "")
        if not redirect.startswith(("http://", "https://")) or not query.get("state"):
            raise web.HTTPBadRequest(text="Oauth error invalid_request: redirect_uri and state are required")
        code = secrets.token_hex(16)
        shop.codes[code] = query.get("scope", "")
        params = {
            "code": code,
            "host": "ZmFrZQ",
            "shop": shop.domain,
            "state": query["state"],
            "timestamp": str(int(time.time())),
        }
        params["hmac"] = sign_query(self.api_secret, params)
        raise web.HTTPFound(f"{redirect}?{urlencode(params)}")

    async def access_token(self, request: web.Request) -> web.Response:
        shop = self._shop(request)
        body = (
            dict(await request.post()) if request.content_type != "application/json" else await request.json()
        )
        if body.get("client_id") != self.api_key or body.get("client_secret") != self.api_secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        if body.get("grant_type") == TOKEN_EXCHANGE:
            scope = self._exchange(shop, str(body.get("subject_token", "")))
        else:
            scope = shop.codes.pop(str(body.get("code")), None)
        if scope is None:
            return web.json_response(
                {"error": "invalid_request", "error_description": "The authorization code was not found"},
                status=400,
            )
        token = f"shpat_{secrets.token_hex(16)}"
        shop.tokens.add(token)
        shop.scope = scope
        return web.json_response({"access_token": token, "scope": scope})

    def _exchange(self, shop: FakeShop, session_token: str) -> str | None:
        import jwt

        try:
            claims = jwt.decode(session_token, self.api_secret, algorithms=["HS256"], audience=self.api_key)
        except jwt.PyJWTError:
            return None
        if claims.get("dest") != f"https://{shop.domain}":
            return None
        return shop.scope or self.app_scopes

    # Admin REST ----------------------------------------------------------------------------------

    def _admit(self, request: web.Request, shop: FakeShop) -> dict[str, str]:
        if request.headers.get("X-Shopify-Access-Token") not in shop.tokens:
            raise web.HTTPUnauthorized(
                text='{"errors":"[API] Invalid API key or access token"}', content_type="application/json"
            )
        shop.rest_calls += 1
        admitted, wait = shop.rest_bucket.take()
        if shop.force_429 > 0:
            shop.force_429, admitted, wait = shop.force_429 - 1, False, max(wait, 1.0)
        headers = {"X-Shopify-Shop-Api-Call-Limit": shop.rest_bucket.header()}
        if not admitted:
            raise web.HTTPTooManyRequests(
                headers=headers | {"Retry-After": f"{max(wait, 0.5):.1f}"},
                text='{"errors":"Exceeded 2 calls per second for api client. Reduce request rates."}',
                content_type="application/json",
            )
        return headers

    async def rest_customers(self, request: web.Request) -> web.Response:
        shop = self._shop(request)
        headers = self._admit(request, shop)
        limit = int(request.query.get("limit", "50"))
        if not 1 <= limit <= 250:
            return web.json_response({"errors": {"limit": "must be between 1 and 250"}}, status=400)
        cursor = request.query.get("page_info")
        updated_min = request.query.get("updated_at_min")
        after, since = 0, None
        if cursor:  # page_info carries the filters of the first page (Shopify refuses them alongside)
            after, since = _decode_page_info(cursor)
        elif updated_min:
            since = datetime.fromisoformat(updated_min.replace("Z", "+00:00")).timestamp()
        page = shop.book.page(after, limit, since)
        if page and shop.book.page(page[-1].id, 1, since):
            next_info = _encode_page_info(page[-1].id, since)
            base = f"{self.url}{request.path}"
            headers["Link"] = f'<{base}?{urlencode({"limit": limit, "page_info": next_info})}>; rel="next"'
        return web.json_response({"customers": [c.rest() for c in page]}, headers=headers)

    async def rest_count(self, request: web.Request) -> web.Response:
        shop = self._shop(request)
        headers = self._admit(request, shop)
        return web.json_response({"count": len(shop.book.customers)}, headers=headers)

    async def rest_webhooks(self, request: web.Request) -> web.Response:
        shop = self._shop(request)
        headers = self._admit(request, shop)
        hook = (await request.json()).get("webhook") or {}
        topic, address = hook.get("topic"), hook.get("address")
        if not topic or not str(address).startswith(("http://", "https://")):
            return web.json_response({"errors": {"address": ["is invalid"]}}, status=422, headers=headers)
        shop.webhooks[topic] = address
        body = {"id": uuid.uuid4().int % 10**12, "topic": topic, "address": address, "format": "json"}
        return web.json_response({"webhook": body}, status=201, headers=headers)

    async def graphql(self, request: web.Request) -> web.Response:
        shop = self._shop(request)
        if request.headers.get("X-Shopify-Access-Token") not in shop.tokens:
            return web.json_response({"errors": "[API] Invalid API key or access token"}, status=401)
        body = await request.json()
        answer = graphql.execute(shop, str(body.get("query", "")), body.get("variables") or {}, self.url)
        return web.json_response(answer)

    async def bulk_file(self, request: web.Request) -> web.StreamResponse:
        path = self.bulk_dir / request.match_info["name"]
        if float(request.query.get("expires", "0")) < time.time():
            return web.Response(status=403, text="<Error><Code>ExpiredToken</Code></Error>")
        if not path.is_file() or path.parent != self.bulk_dir:
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": "application/jsonl"})

    # Controls (tests and demos) ---------------------------------------------------------------

    async def control_touch(self, request: web.Request) -> web.Response:
        shop = self._shop(request)
        count = int((await request.json()).get("count", 1))
        return web.json_response({"changed": [c.id for c in shop.book.touch(count)]})

    async def control_uninstall(self, request: web.Request) -> web.Response:
        delivery = await self.uninstall(self._shop(request).domain)
        return web.json_response({"webhook_id": delivery.webhook_id if delivery else None})

    async def uninstall(self, domain: str) -> Delivery | None:
        shop = self.shop(domain)
        shop.tokens.clear()
        address = shop.webhooks.get("app/uninstalled")
        if address is None:
            return None
        return await self.sender.deliver(address, "app/uninstalled", domain, {"id": 1, "domain": domain})

    async def customer_webhooks(self, domain: str, topic: str, count: int = 1) -> list[Delivery]:
        """`customers/create` or `customers/update` for `count` customers of the shop (changed first
        when updated), to the address the app subscribed at install; nothing if it did not."""
        shop = self.shop(domain)
        address = shop.webhooks.get(topic)
        if address is None:
            return []
        customers = shop.book.touch(count) if topic == "customers/update" else shop.book.customers[-count:]
        return [await self.sender.deliver(address, topic, domain, customer.rest()) for customer in customers]

    async def compliance(self, domain: str, topic: str, payload: dict[str, Any]) -> Delivery:
        """A mandatory compliance webhook (its URL is app configuration, not a subscription)."""
        if self.app_url is None:
            raise RuntimeError("the fake needs app_url to send compliance webhooks")
        return await self.sender.deliver(f"{self.app_url}/shopify/webhooks/{topic}", topic, domain, payload)


def _encode_page_info(last_id: int, since: float | None) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps([last_id, since]).encode()).decode().rstrip("=")


def _decode_page_info(value: str) -> tuple[int, float | None]:
    import base64
    import json

    try:
        last_id, since = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        return int(last_id), since
    except (ValueError, TypeError):
        raise web.HTTPBadRequest(text='{"errors":{"page_info":"Invalid value."}}') from None


@asynccontextmanager
async def running_fake_shopify(
    fake: FakeShopify, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[FakeShopify]:
    runner = web.AppRunner(fake.application(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://{host}:{bound}"
    try:
        yield fake
    finally:
        for shop in fake.shops.values():
            if shop.bulk_task is not None:
                shop.bulk_task.cancel()
        await runner.cleanup()
