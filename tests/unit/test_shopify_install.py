"""The install flow, the OAuth callback and the session-token exchange, on fakes
(tests/unit/fakes.py): no PostgreSQL, Redis, Kafka or Shopify."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import jwt
import pytest

from core_app import topics
from core_app.domain.errors import Unavailable, ValidationFailed
from core_app.domain.shopify import sign_query
from core_app.security.errors import Unauthenticated
from core_app.services.shopify_install import begin_install, complete_install
from core_app.services.shopify_session import exchange_session
from tests.unit.fakes import SHOPIFY_SECRET, FakeMerchants, FakeRecordPublisher, FakeShopifyHttp, shopify_deps

SHOP = "unit-shop.myshopify.com"
GRANTED = {"access_token": "shpat_unit", "scope": "read_customers,write_customers"}
CREATED = {"webhook": {"id": 1}}


def signed(params: dict[str, str], secret: str = SHOPIFY_SECRET) -> str:
    return urlencode(params | {"hmac": sign_query(secret, params)})


def install_query(**changes: str) -> str:
    return signed({"shop": SHOP, "timestamp": str(int(time.time()))} | changes)


def shopify_answering() -> FakeShopifyHttp:
    """The fake shop: the code exchange granted, the webhooks created."""
    return FakeShopifyHttp(
        answers={"/admin/oauth/access_token": (200, GRANTED), "/webhooks.json": (201, CREATED)}
    )


async def started(deps: Any) -> str:
    """The state nonce of a begun install."""
    location = await begin_install(deps, install_query())
    return parse_qs(urlsplit(location).query)["state"][0]


async def test_begin_install_redirects_to_the_grant_screen_and_keeps_the_state() -> None:
    deps = shopify_deps()
    location = await begin_install(deps, install_query())
    url = urlsplit(location)
    assert (url.netloc, url.path) == (SHOP, "/admin/oauth/authorize")
    state = parse_qs(url.query)["state"][0]
    assert deps.redis.expiries[f"t:shopify:{{{SHOP}}}:state:{state}"] == 600


@pytest.mark.parametrize(
    "query",
    [
        signed({"shop": SHOP, "timestamp": str(int(time.time()))}, secret="another-secret"),
        urlencode({"shop": SHOP, "timestamp": str(int(time.time()))}),
        install_query(timestamp=str(int(time.time()) - 3600)),
    ],
    ids=["wrong-hmac", "no-hmac", "old-link"],
)
async def test_begin_install_refuses_an_unsigned_or_stale_link(query: str) -> None:
    with pytest.raises(Unauthenticated):
        await begin_install(shopify_deps(), query)


async def test_begin_install_refuses_a_signed_link_for_a_foreign_host() -> None:
    with pytest.raises(ValidationFailed):
        await begin_install(shopify_deps(), install_query(shop="evil.example.com"))


async def test_callback_installs_registers_the_webhooks_and_publishes() -> None:
    deps = shopify_deps(http=shopify_answering())
    merchant = await complete_install(deps, install_query(state=await started(deps), code="c0de"))
    assert merchant["shop_domain"] == SHOP and merchant["reinstalled"] is False
    assert deps.store.tokens[merchant["id"]] == "shpat_unit"
    hooks = [body["webhook"]["topic"] for url, body, _ in deps.http.posted if url.endswith("/webhooks.json")]
    assert hooks == ["app/uninstalled", "customers/create", "customers/update"]
    [(key, record)] = deps.publish.on(topics.MERCHANT_INSTALLED)
    assert key == merchant["id"] and record["shop_domain"] == SHOP


async def test_callback_of_a_known_shop_is_a_reinstall_and_a_taken_webhook_is_fine() -> None:
    store = FakeMerchants()
    store.add(SHOP, status="uninstalled")
    taken = (422, {"errors": {"address": ["for this topic has already been taken"]}})
    deps = shopify_deps(store=store, http=shopify_answering())
    deps.http.answers["/webhooks.json"] = taken
    merchant = await complete_install(deps, install_query(state=await started(deps), code="c0de"))
    assert merchant["reinstalled"] is True and store.merchants[SHOP]["status"] == "installed"


async def test_callback_state_is_good_once() -> None:
    deps = shopify_deps(http=shopify_answering())
    query = install_query(state=await started(deps), code="c0de")
    await complete_install(deps, query)
    with pytest.raises(Unauthenticated, match="state"):
        await complete_install(deps, query)


async def test_callback_refuses_an_unknown_state_and_a_missing_code() -> None:
    deps = shopify_deps(http=shopify_answering())
    with pytest.raises(Unauthenticated, match="state"):
        await complete_install(deps, install_query(state="forged", code="c0de"))
    with pytest.raises(ValidationFailed):
        await complete_install(deps, install_query(state=await started(deps)))
    assert deps.publish.sent == []


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ((400, {"error": "invalid_request"}), Unauthenticated),
        ((503, {}), Unavailable),
        (aiohttp.ClientConnectionError("reset"), Unavailable),
        ((200, {"access_token": "shpat_unit", "scope": "read_customers"}), ValidationFailed),
    ],
    ids=["code-refused", "shopify-5xx", "transport-error", "scopes-short"],
)
async def test_callback_fails_without_installing_when_the_exchange_does(answer: Any, error: type) -> None:
    deps = shopify_deps(http=FakeShopifyHttp(answers={"/admin/oauth/access_token": answer}))
    with pytest.raises(error):
        await complete_install(deps, install_query(state=await started(deps), code="c0de"))
    assert deps.store.merchants == {} and deps.publish.sent == []


async def test_callback_fails_when_shopify_refuses_a_webhook() -> None:
    deps = shopify_deps(http=shopify_answering())
    deps.http.answers["/webhooks.json"] = (403, {"errors": "forbidden"})
    with pytest.raises(Unavailable):
        await complete_install(deps, install_query(state=await started(deps), code="c0de"))
    assert deps.publish.on(topics.MERCHANT_INSTALLED) == []


def session_token(secret: str = SHOPIFY_SECRET, **changes: Any) -> str:
    now = time.time()
    claims = {
        "iss": f"https://{SHOP}/admin",
        "dest": f"https://{SHOP}",
        "aud": "unit-app",
        "exp": now + 60,
        "nbf": now - 1,
        "jti": f"jti-{now}",
    }
    return "Bearer " + jwt.encode(claims | changes, secret, algorithm="HS256")


async def test_session_exchange_installs_the_shop_once_per_token() -> None:
    deps = shopify_deps(http=shopify_answering(), publish=FakeRecordPublisher())
    token = session_token()
    merchant = await exchange_session(deps, token)
    assert merchant["shop_domain"] == SHOP
    [(_, body, _)] = [post for post in deps.http.posted if post[0].endswith("/access_token")]
    assert body["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
    with pytest.raises(Unauthenticated, match="already used"):
        await exchange_session(deps, token)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic abc",
        session_token(secret="another-secret-of-at-least-32-bytes"),
        session_token(aud="another-app"),
        session_token(exp=time.time() - 60),
        session_token(dest="https://evil.example.com"),
        session_token(iss="https://other-shop.myshopify.com/admin"),
    ],
    ids=["missing", "not-bearer", "wrong-secret", "wrong-audience", "expired", "not-a-shop", "two-shops"],
)
async def test_session_exchange_refuses_a_bad_token(authorization: str | None) -> None:
    deps = shopify_deps(http=shopify_answering())
    with pytest.raises(Unauthenticated):
        await exchange_session(deps, authorization)
    assert deps.http.posted == []


async def test_session_exchange_refused_or_unavailable_at_shopify() -> None:
    refused = shopify_deps(http=FakeShopifyHttp(answers={"/access_token": (400, {})}))
    with pytest.raises(Unauthenticated, match="refused"):
        await exchange_session(refused, session_token())
    down = shopify_deps(http=FakeShopifyHttp(answers={"/access_token": (502, {})}))
    with pytest.raises(Unavailable):
        await exchange_session(down, session_token())
