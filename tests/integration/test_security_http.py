"""The aiohttp middleware in-process over real Redis and PostgreSQL: signed REST, JWT on GraphQL
paths, internal token, 429 with Retry-After shared by two app instances, allow-list and flags
changing without a restart, X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import aiohttp
import pytest

from core_app.security import RFM_SCORE, VIEW
from core_app.security.cli import change_allowlist, set_flag
from core_app.security.principal import EDIT, FULL
from core_app.settings import DEV_INTERNAL_TOKEN, Settings
from tests.support.auth import bearer, create_api_credentials, mint_jwt, signed_session
from tests.support.events import new_merchant
from tests.support.security import ROUTES, open_layer, serve


@pytest.fixture
async def app(settings: Settings):
    async with open_layer(settings) as layer, serve(layer, ROUTES) as url:
        yield url


async def test_signed_rest_request_is_authenticated(app: str, settings: Settings) -> None:
    merchant = new_merchant(settings)
    creds = create_api_credentials(settings, merchant, [VIEW])
    async with signed_session(creds) as http:
        async with http.get(
            f"{app}/core/v1/whoami", params={"merchant_id": merchant, "q": "a b"}
        ) as response:
            assert response.status == 200, await response.text()
            answer = await response.json()
        assert answer == {
            "subject": f"api_key:{creds.key_id}",
            "merchant_id": merchant,
            "client_ip": "127.0.0.1",
            "body": 0,
        }
        async with http.post(f"{app}/core/v1/whoami", json={"x": "é" * 100}) as response:
            assert response.status == 200 and (await response.json())["body"] > 100  # handler still reads it


async def test_unsigned_bad_old_and_replayed_requests_get_401(app: str, settings: Settings) -> None:
    merchant = new_merchant(settings)
    creds = create_api_credentials(settings, merchant, [VIEW])
    path = f"/core/v1/whoami?merchant_id={merchant}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{app}{path}") as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == "HMAC-SHA256"
            assert (await response.json())["error"]["code"] == "UNAUTHENTICATED"

        async def status(headers: dict[str, str], url_path: str = path) -> tuple[int, str]:
            async with http.get(f"{app}{url_path}", headers=headers) as response:
                return response.status, (await response.json())["error"]["message"]

        bad = creds.headers("GET", path) | {"X-Signature": "0" * 64}
        assert await status(bad) == (401, "signature does not verify")
        other_path = creds.headers("GET", f"/core/v1/whoami?merchant_id={uuid.uuid4()}")
        assert (await status(other_path))[0] == 401
        old = creds.headers("GET", path, timestamp=int(time.time()) - 301)
        assert await status(old) == (401, "signature is older than 300 s")
        future = creds.headers("GET", path, timestamp=int(time.time()) + 120)
        assert await status(future) == (401, "signature timestamp is in the future")
        unknown = creds.headers("GET", path) | {"X-Api-Key": "lnk_" + "f" * 24}
        assert await status(unknown) == (401, "unknown, revoked or expired API key")

        signed = creds.headers("GET", path)
        async with http.get(f"{app}{path}", headers=signed) as response:
            assert response.status == 200
        assert await status(signed) == (401, "signature already used (replay)")


async def test_body_is_part_of_the_signature(app: str, settings: Settings) -> None:
    creds = create_api_credentials(settings, new_merchant(settings), [EDIT])
    body = json.dumps({"merchant_id": creds.merchant_id}).encode()
    headers = creds.headers("POST", "/core/v1/whoami", body) | {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{app}/core/v1/whoami", data=body.replace(b"}", b',"x":1}'), headers=headers
        ) as r:
            assert r.status == 401
        async with http.post(f"{app}/core/v1/whoami", data=b"x" * (1024 * 1024 + 1), headers=headers) as r:
            assert r.status == 413  # oversized bodies are refused before any hashing


async def test_wrong_merchant_and_missing_flag_are_403(app: str, settings: Settings) -> None:
    merchant = new_merchant(settings)
    creds = create_api_credentials(settings, merchant, [VIEW])
    async with signed_session(creds) as http:
        async with http.get(f"{app}/core/v1/whoami", params={"merchant_id": str(uuid.uuid4())}) as response:
            assert response.status == 403
            assert (await response.json())["error"]["reason"] == "merchant"
        query = {"merchant_id": merchant, "flag": "1"}
        async with http.get(f"{app}/core/v1/whoami", params=query) as response:
            assert response.status == 200
        set_flag(settings, merchant, RFM_SCORE, False, "cli:test")
        async with http.get(f"{app}/core/v1/whoami", params=query) as response:
            assert response.status == 403
            error = (await response.json())["error"]
            assert error["flag"] == RFM_SCORE and error["code"] == "FEATURE_DISABLED"
        set_flag(settings, merchant, RFM_SCORE, True, "cli:test")
        async with http.get(f"{app}/core/v1/whoami", params=query) as response:
            assert response.status == 200


async def test_allow_list_applies_without_restart_and_xff_needs_a_trusted_proxy(
    app: str, settings: Settings
) -> None:
    merchant = new_merchant(settings)
    creds = create_api_credentials(settings, merchant, [VIEW])
    async with signed_session(creds) as http:
        change_allowlist(settings, merchant, "add", ["203.0.113.10"], "cli:test")
        spoofed = {"X-Forwarded-For": "203.0.113.10"}
        async with http.get(f"{app}/core/v1/whoami", headers=spoofed) as response:
            assert response.status == 403  # 127.0.0.1 is no trusted proxy: the header means nothing
            assert (await response.json())["error"]["reason"] == "ip"
        change_allowlist(settings, merchant, "add", ["127.0.0.1"], "cli:test")
        async with http.get(f"{app}/core/v1/whoami") as response:
            assert response.status == 200
        change_allowlist(settings, merchant, "clear", [], "cli:test")

    async with open_layer(settings, trusted_proxies="127.0.0.0/8") as behind_proxy:
        async with serve(behind_proxy, ROUTES) as proxied, signed_session(creds) as http:
            change_allowlist(settings, merchant, "add", ["203.0.113.10"], "cli:test")
            async with http.get(f"{proxied}/core/v1/whoami", headers=spoofed) as response:
                assert response.status == 200
                assert (await response.json())["client_ip"] == "203.0.113.10"
            async with http.get(f"{proxied}/core/v1/whoami") as response:
                assert response.status == 403
            change_allowlist(settings, merchant, "clear", [], "cli:test")


async def test_101st_request_gets_429_with_retry_after_across_two_instances(settings: Settings) -> None:
    merchant = new_merchant(settings)
    creds = create_api_credentials(settings, merchant, [VIEW])
    async with (
        open_layer(settings) as first_layer,
        open_layer(settings) as second_layer,
        serve(first_layer, ROUTES) as first,
        serve(second_layer, ROUTES) as second,
        signed_session(creds, connector=aiohttp.TCPConnector(limit=20)) as http,
    ):

        async def call(base: str) -> tuple[int, str | None]:
            async with http.get(f"{base}/core/v1/whoami") as response:
                return response.status, response.headers.get("Retry-After")

        started = time.monotonic()
        answers = await asyncio.gather(*(call(first if i % 2 else second) for i in range(100)))
        last = await call(second)
        elapsed = time.monotonic() - started
        assert [s for s, _ in answers] == [200] * 100
        if elapsed >= 1.0:
            pytest.skip(f"100 requests took {elapsed:.2f} s here; the window is one second")
        assert last[0] == 429 and int(last[1]) >= 1
        assert (await call(first))[0] == 429


async def test_graphql_paths_take_a_bearer_token(app: str, settings: Settings) -> None:
    merchant = new_merchant(settings)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{app}/graphql", json={"query": "{x}"}) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="core"'
        expired = bearer(mint_jwt(merchant, [VIEW], expires_in=-30))
        async with http.post(f"{app}/graphql", json={}, headers=expired) as response:
            # GraphQL's error shape on /graphql, like every other error there (D152)
            answer = await response.json()
            assert (response.status, answer["errors"][0]["message"]) == (401, "token expired")
            assert answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        good = bearer(mint_jwt(merchant, [FULL], subject="ana"))
        async with http.post(f"{app}/graphql", json={}, headers=good) as response:
            assert response.status == 200 and (await response.json())["subject"] == "ana"
        page = {"Accept": "text/html"}
        async with http.get(f"{app}/graphql", headers=page) as response:
            assert response.status == 200  # the GraphiQL page carries no data
        async with http.get(f"{app}/graphql", params={"query": "{x}"}, headers=page) as response:
            assert response.status == 401


async def test_internal_routes_want_the_internal_token_and_health_wants_nothing(app: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{app}/internal/v1/whoami") as response:
            assert response.status == 401
        headers = {"X-Internal-Token": "guess"}
        async with http.get(f"{app}/internal/v1/whoami", headers=headers) as response:
            assert response.status == 401
        headers = {"X-Internal-Token": DEV_INTERNAL_TOKEN}
        async with http.get(f"{app}/internal/v1/whoami", headers=headers) as response:
            assert response.status == 200 and (await response.json())["subject"] == "internal"
        for probe in ("/health", "/live"):  # the orchestrator's probes carry no credentials
            async with http.get(f"{app}{probe}") as response:
                assert response.status == 200 and await response.json() == {"principal": False}


async def test_favicon_is_404_without_credentials_and_other_methods_still_need_them(app: str) -> None:
    async with aiohttp.ClientSession() as http:
        for method in ("GET", "HEAD"):
            async with http.request(method, f"{app}/favicon.ico") as response:
                assert response.status == 404, method
                assert "WWW-Authenticate" not in response.headers
        async with http.get(f"{app}/favicon.ico") as response:
            assert (await response.json())["error"]["code"] == "NOT_FOUND"
        async with http.post(f"{app}/favicon.ico") as response:
            assert response.status == 401  # public for a browser's GET only
