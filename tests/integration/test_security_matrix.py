"""Security matrix: every route, query, mutation, subscription and RPC x every refusal case, against a
real worker with the security layer on (tests/support/auth.py `secure_worker`).

Run it alone:  .venv/bin/pytest tests/integration/test_security_matrix.py -q -rA
It reports how many cases ran ("security matrix: N cases ...") at the end of the session.

To cover a new route, add a `Route` to ROUTES. `pending="why"` marks a route whose use case does not
call `guard()` yet: its authorization cases are strict xfails, so they fail loudly once it does and
the mark must go.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from google.protobuf.struct_pb2 import Struct
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status

from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.security.principal import EDIT, FULL, READ_PII, VIEW
from core_app.settings import Settings
from tests.support.auth import ApiCredentials, bearer, create_api_credentials, grpc_metadata, mint_jwt
from tests.support.events import insert_customers, new_merchant
from tests.support.processes import WorkerProcess

THRESHOLDS = {
    "recency": {"min": 1, "max": 90},
    "frequency": {"min": 1, "max": 10},
    "monetary": {"min": 50, "max": 2500},
}
CONFIG = {"points_per_dollar": 10, "languages": ["en", "ar"]}


def email() -> str:
    return f"matrix-{uuid.uuid4().hex[:10]}@example.com"


def struct(value: dict[str, Any]) -> Struct:
    message = Struct()
    message.update(value)
    return message


@dataclass(frozen=True)
class Route:
    name: str
    transport: str  # rest | graphql | grpc | ws
    permission: str
    # (merchant_id, customer_id) -> REST {"params"|"json": ...}, GraphQL/WS (query, variables),
    # gRPC request message
    build: Callable[[str, str], Any]
    method: str = ""  # REST method or RPC name
    path: str = ""  # REST path
    pending: str | None = None


GQL_CUSTOMER = "query($m: ID!, $c: ID!) { getCustomer(merchant_id: $m, customer_id: $c) { id } }"
GQL_RFM = "query($m: ID!, $c: ID!) { getCustomerRFM(merchant_id: $m, customer_id: $c) { recency } }"
GQL_SETTINGS = "query($m: ID!) { getProgramSettings(merchant_id: $m) { id } }"
GQL_IMPORT_LOGS = "query($m: ID!) { getImportLogs(merchant_id: $m) { import_id } }"
GQL_CREATE = "mutation($m: ID!, $i: CustomerInput!) { createCustomer(merchant_id: $m, input: $i) { id } }"
GQL_UPDATE = (
    "mutation($m: ID!, $c: ID!, $i: CustomerInput!)"
    " { updateCustomer(merchant_id: $m, customer_id: $c, input: $i) { id } }"
)
GQL_UPDATE_SETTINGS = (
    "mutation($m: ID!, $i: SettingsInput!) { updateProgramSettings(merchant_id: $m, input: $i) { id } }"
)
GQL_IMPORT = (
    'mutation($m: ID!) { importCustomers(merchant_id: $m, source: "custom",'
    ' file_url: "https://example.com/c.csv") { import_id } }'
)
GQL_CUSTOMERS = (
    "query($m: ID!) { customers(merchant_id: $m, first: 5)"
    " { edges { node { id email } } pageInfo { hasNextPage } } }"
)
GQL_SEGMENTS = "query($m: ID!) { segmentCounts(merchant_id: $m) { total segments { segment customers } } }"
GQL_TIMELINE = (
    "query($m: ID!, $c: ID!) { customerTimeline(merchant_id: $m, customer_id: $c, first: 5)"
    " { redacted entries { kind reason } } }"
)
SUB_CUSTOMER = "subscription($m: ID!) { onCustomerUpdate(merchant_id: $m) { id } }"
SUB_IMPORT = "subscription($m: ID!, $c: ID!) { onImportProgress(merchant_id: $m, import_id: $c) { status } }"
NOT_GUARDED = "use case not served yet: it must call guard() when it lands"

ROUTES: list[Route] = [
    # REST (API key + signature)
    Route(
        "GET /core/v1/customers",
        "rest",
        VIEW,
        lambda m, c: {"params": {"merchant_id": m, "customer_id": c}},
        "GET",
        "/core/v1/customers",
    ),
    Route(
        "GET /core/v1/customers (list)",
        "rest",
        VIEW,
        lambda m, c: {"params": {"merchant_id": m, "limit": "5", "tag": "vip"}},
        "GET",
        "/core/v1/customers",
    ),
    Route(
        "GET /core/v1/segments",
        "rest",
        VIEW,
        lambda m, c: {"params": {"merchant_id": m}},
        "GET",
        "/core/v1/segments",
    ),
    Route(
        "GET /core/v1/customers/{customer_id}/timeline",
        "rest",
        VIEW,
        lambda m, c: {"params": {"merchant_id": m, "limit": "5"}},
        "GET",
        "/core/v1/customers/{customer_id}/timeline",
    ),
    Route(
        "POST /core/v1/customers",
        "rest",
        EDIT,
        lambda m, c: {"json": {"merchant_id": m, "email": email(), "metadata": {"tier": "gold"}}},
        "POST",
        "/core/v1/customers",
    ),
    Route(
        "GET /core/v1/settings",
        "rest",
        VIEW,
        lambda m, c: {"params": {"merchant_id": m}},
        "GET",
        "/core/v1/settings",
    ),
    Route(
        "POST /core/v1/settings",
        "rest",
        FULL,
        lambda m, c: {"json": {"merchant_id": m, "rfm_thresholds": THRESHOLDS, "loyalty_config": CONFIG}},
        "POST",
        "/core/v1/settings",
    ),
    Route(
        "GET /core/v1/imports",
        "rest",
        VIEW,
        lambda m, c: {"params": {"merchant_id": m}},
        "GET",
        "/core/v1/imports",
    ),
    Route(
        "POST /core/v1/imports",
        "rest",
        EDIT,
        lambda m, c: {
            "json": {"merchant_id": m, "source": "custom", "file_url": "https://example.com/c.csv"}
        },
        "POST",
        "/core/v1/imports",
    ),
    # GraphQL over HTTP (JWT)
    Route(
        "GET /core/v1/admin/dlq",
        "rest",
        FULL,
        lambda m, c: {"params": {"merchant_id": m}},
        "GET",
        "/core/v1/admin/dlq",
    ),
    Route(
        "GET /core/v1/gdpr/exports/{export_id}",
        "rest",
        READ_PII,  # admin:customers:view plus the PII scope, which no role implies (D132, D161)
        lambda m, c: {"params": {"merchant_id": m}},
        "GET",
        f"/core/v1/gdpr/exports/{uuid.uuid4()}",  # none: allowed means 404, refused 401/403
    ),
    Route("query getCustomer", "graphql", VIEW, lambda m, c: (GQL_CUSTOMER, {"m": m, "c": c})),
    Route("query getCustomerRFM", "graphql", VIEW, lambda m, c: (GQL_RFM, {"m": m, "c": c})),
    Route("query getProgramSettings", "graphql", VIEW, lambda m, c: (GQL_SETTINGS, {"m": m})),
    Route("query getImportLogs", "graphql", VIEW, lambda m, c: (GQL_IMPORT_LOGS, {"m": m})),
    Route("query customers", "graphql", VIEW, lambda m, c: (GQL_CUSTOMERS, {"m": m})),
    Route("query segmentCounts", "graphql", VIEW, lambda m, c: (GQL_SEGMENTS, {"m": m})),
    Route("query customerTimeline", "graphql", VIEW, lambda m, c: (GQL_TIMELINE, {"m": m, "c": c})),
    Route(
        "mutation createCustomer",
        "graphql",
        EDIT,
        lambda m, c: (GQL_CREATE, {"m": m, "i": {"email": email(), "metadata": {}}}),
    ),
    Route(
        "mutation updateCustomer",
        "graphql",
        EDIT,
        lambda m, c: (GQL_UPDATE, {"m": m, "c": c, "i": {"email": email(), "metadata": {"vip": True}}}),
    ),
    Route(
        "mutation updateProgramSettings",
        "graphql",
        FULL,
        lambda m, c: (
            GQL_UPDATE_SETTINGS,
            {"m": m, "i": {"rfm_thresholds": THRESHOLDS, "loyalty_config": CONFIG}},
        ),
    ),
    Route("mutation importCustomers", "graphql", EDIT, lambda m, c: (GQL_IMPORT, {"m": m})),
    # GraphQL subscriptions over graphql-transport-ws (JWT in connection_init)
    Route(
        "subscription onCustomerUpdate",
        "ws",
        VIEW,
        lambda m, c: (SUB_CUSTOMER, {"m": m}),
    ),
    Route(
        "subscription onImportProgress",
        "ws",
        VIEW,
        lambda m, c: (SUB_IMPORT, {"m": m, "c": c}),
    ),
    # gRPC core.v1.CoreService (JWT in `authorization` metadata)
    Route(
        "rpc GetCustomer",
        "grpc",
        VIEW,
        lambda m, c: pb.GetCustomerRequest(merchant_id=m, customer_id=c),
        "GetCustomer",
    ),
    Route(
        "rpc GetCustomerRFM",
        "grpc",
        VIEW,
        lambda m, c: pb.GetCustomerRFMRequest(merchant_id=m, customer_id=c),
        "GetCustomerRFM",
    ),
    Route(
        "rpc ListCustomers",
        "grpc",
        VIEW,
        lambda m, c: pb.ListCustomersRequest(merchant_id=m, page_size=2, max_records=3),
        "ListCustomers",
    ),
    Route(
        "rpc GetSegmentCounts",
        "grpc",
        VIEW,
        lambda m, c: pb.GetSegmentCountsRequest(merchant_id=m),
        "GetSegmentCounts",
    ),
    Route(
        "rpc UnsealEmail",
        "grpc",
        READ_PII,  # admin:customers:view and customers:read_pii; too few: every role, not the scope
        lambda m, c: pb.UnsealEmailRequest(merchant_id=m, customer_id=c, sealed_email="ce1:AAAA"),
        "UnsealEmail",
    ),
    Route(
        "rpc CreateCustomer",
        "grpc",
        EDIT,
        lambda m, c: pb.CreateCustomerRequest(merchant_id=m, email=email(), metadata=struct({})),
        "CreateCustomer",
    ),
    Route(
        "rpc UpdateCustomer",
        "grpc",
        EDIT,
        lambda m, c: pb.UpdateCustomerRequest(merchant_id=m, customer_id=c, metadata=struct({"vip": True})),
        "UpdateCustomer",
    ),
    Route(
        "rpc UpdateProgramSettings",
        "grpc",
        FULL,
        lambda m, c: pb.UpdateProgramSettingsRequest(
            merchant_id=m, rfm_thresholds=struct(THRESHOLDS), loyalty_config=struct(CONFIG)
        ),
        "UpdateProgramSettings",
    ),
    Route(
        "rpc ImportCustomers",
        "grpc",
        EDIT,
        lambda m, c: pb.ImportCustomersRequest(
            merchant_id=m, source="custom", file_url="https://example.com/c.csv"
        ),
        "ImportCustomers",
    ),
    # WebSocket /core/v1/updates/stream (JWT in its first frame, connection_init)
    Route("stream /core/v1/updates/stream", "stream", VIEW, lambda m, c: {"merchant_id": m}),
]

ALLOWED, UNAUTHENTICATED, FORBIDDEN = "allowed", "unauthenticated", "forbidden"
CASES = {
    "valid": ALLOWED,
    "no_credentials": UNAUTHENTICATED,
    "expired_token": UNAUTHENTICATED,
    "bad_signature": UNAUTHENTICATED,
    "replayed_signature": UNAUTHENTICATED,
    "wrong_merchant": FORBIDDEN,
    "too_few_permissions": FORBIDDEN,
}
BELOW = {VIEW: [], EDIT: [VIEW], FULL: [EDIT], READ_PII: [FULL]}  # FULL lacks the PII scope


def applies(route: Route, case: str) -> bool:
    if case == "replayed_signature":
        return route.transport == "rest"  # bearer tokens are replayable until they expire, by design
    if case == "too_few_permissions" and route.transport == "rest":
        return route.permission != VIEW  # every API key grants at least view
    return True


def matrix() -> list[Any]:
    params = []
    for route in ROUTES:
        for case in CASES:
            if not applies(route, case):
                continue
            marks = []
            if route.pending and CASES[case] == FORBIDDEN:
                marks.append(pytest.mark.xfail(strict=True, reason=route.pending))
            params.append(pytest.param(route, case, id=f"{route.name}-{case}", marks=marks))
    return params


RAN: list[str] = []


class MatrixReport:
    """Registered as a pytest plugin while the module runs: prints the case count in the summary."""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        transports = sorted({r.transport for r in ROUTES})
        terminalreporter.write_sep("-", "security matrix")
        terminalreporter.write_line(
            f"security matrix: {len(RAN)} cases ran over {len(ROUTES)} routes + {len(SHOPIFY_CASES)} Shopify "
            f"({', '.join(transports)}); {len(matrix())} applicable of {len(ROUTES) * len(CASES)}"
        )


@pytest.fixture(scope="module", autouse=True)
def report_count(request: pytest.FixtureRequest) -> None:
    plugins = request.config.pluginmanager
    if not plugins.has_plugin("security-matrix-report"):
        plugins.register(MatrixReport(), "security-matrix-report")


@dataclass
class Tenant:
    merchant_id: str
    customer_id: str
    other_merchant_id: str
    keys: dict[str, ApiCredentials]


@pytest.fixture(scope="module")
def tenant(settings: Settings) -> Tenant:
    merchant = new_merchant(settings)
    [(customer, _)] = insert_customers(settings, merchant, 1)
    keys = {p: create_api_credentials(settings, merchant, [p]) for p in (VIEW, EDIT, FULL)}
    keys[READ_PII] = create_api_credentials(settings, merchant, [VIEW, READ_PII])
    return Tenant(merchant, customer, new_merchant(settings), keys)


def classify_http(status: int, body: Any) -> str:
    assert status < 500, f"server error {status}: {body}"
    if status == 401:
        return UNAUTHENTICATED
    if status == 403:
        return FORBIDDEN
    if isinstance(body, dict) and body.get("errors"):
        code = body["errors"][0].get("extensions", {}).get("code")
        return {"FORBIDDEN": FORBIDDEN, "UNAUTHENTICATED": UNAUTHENTICATED}.get(code, ALLOWED)
    return ALLOWED


def classify_close(code: int, reason: str | None) -> str:
    """A rejected connection_init closes 4403, its reason starting with the refusal's code (D154)."""
    if code != 4403:
        return f"closed {code}"
    return UNAUTHENTICATED if (reason or "").startswith("UNAUTHENTICATED:") else FORBIDDEN


async def call_rest(worker: WorkerProcess, route: Route, case: str, tenant: Tenant) -> str:
    target = tenant.other_merchant_id if case == "wrong_merchant" else tenant.merchant_id
    spec = route.build(target, tenant.customer_id)
    body = json.dumps(spec["json"]).encode() if "json" in spec else b""
    query = "&".join(f"{k}={v}" for k, v in spec.get("params", {}).items())
    path_qs = route.path.format(customer_id=tenant.customer_id) + (f"?{query}" if query else "")
    valid = READ_PII if route.permission == READ_PII else FULL
    key = tenant.keys[BELOW[route.permission][-1] if case == "too_few_permissions" else valid]
    headers = {"Content-Type": "application/json"} if body else {}
    if case != "no_credentials":
        stamp = int(time.time()) - 301 if case == "expired_token" else None
        headers |= key.headers(route.method, path_qs, body, timestamp=stamp)
        if case == "bad_signature":
            headers["X-Signature"] = "f" * 64
    async with aiohttp.ClientSession() as http:
        times = 2 if case == "replayed_signature" else 1
        for _ in range(times):
            async with http.request(
                route.method, worker.url + path_qs, data=body, headers=headers
            ) as response:
                status, text = response.status, await response.text()
    try:
        answer = json.loads(text)
    except ValueError:
        answer = text
    return classify_http(status, answer)


def token_for(case: str, route: Route, tenant: Tenant) -> str | None:
    if case == "no_credentials":
        return None
    if case == "expired_token":
        return mint_jwt(tenant.merchant_id, [FULL], expires_in=-60)
    if case == "bad_signature":
        return mint_jwt(tenant.merchant_id, [FULL], secret="not-the-configured-secret-000000000")
    if case == "too_few_permissions":
        return mint_jwt(tenant.merchant_id, BELOW[route.permission])
    return mint_jwt(tenant.merchant_id, [FULL, READ_PII] if route.permission == READ_PII else [FULL])


async def call_graphql(worker: WorkerProcess, route: Route, case: str, tenant: Tenant) -> str:
    target = tenant.other_merchant_id if case == "wrong_merchant" else tenant.merchant_id
    query, variables = route.build(target, tenant.customer_id)
    token = token_for(case, route, tenant)
    headers = bearer(token) if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{worker.url}/graphql", json={"query": query, "variables": variables}, headers=headers
        ) as r,
    ):
        return classify_http(r.status, await r.json(content_type=None))


async def call_ws(worker: WorkerProcess, route: Route, case: str, tenant: Tenant) -> str:
    target = tenant.other_merchant_id if case == "wrong_merchant" else tenant.merchant_id
    query, variables = route.build(target, tenant.customer_id)
    token = token_for(case, route, tenant)
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{worker.url}/graphql", protocols=["graphql-transport-ws"]) as ws,
    ):
        await ws.send_json({"type": "connection_init", "payload": {"token": token} if token else {}})
        message = await ws.receive(timeout=10)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return classify_close(ws.close_code or message.data, message.extra)
        assert json.loads(message.data)["type"] == "connection_ack"
        await ws.send_json(
            {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}
        )
        try:
            reply = json.loads((await ws.receive(timeout=3)).data)
        except TimeoutError:
            return ALLOWED  # a live subscription says nothing until an update comes
        errors = reply.get("payload") if reply["type"] == "error" else reply.get("payload", {}).get("errors")
        codes = {e.get("extensions", {}).get("code") for e in errors or []}
        return FORBIDDEN if "FORBIDDEN" in codes else ALLOWED


async def call_grpc(worker: WorkerProcess, route: Route, case: str, tenant: Tenant) -> str:
    target = tenant.other_merchant_id if case == "wrong_merchant" else tenant.merchant_id
    token = token_for(case, route, tenant)
    channel = Channel("127.0.0.1", worker.grpc_port)
    try:
        method = getattr(CoreServiceStub(channel), route.method)
        await method(
            route.build(target, tenant.customer_id), metadata=grpc_metadata(token) if token else None
        )
    except GRPCError as exc:
        assert exc.status not in (Status.UNKNOWN, Status.INTERNAL), f"server error: {exc}"
        return {Status.UNAUTHENTICATED: UNAUTHENTICATED, Status.PERMISSION_DENIED: FORBIDDEN}.get(
            exc.status, ALLOWED
        )
    finally:
        channel.close()
    return ALLOWED


async def call_stream(worker: WorkerProcess, route: Route, case: str, tenant: Tenant) -> str:
    target = tenant.other_merchant_id if case == "wrong_merchant" else tenant.merchant_id
    token = token_for(case, route, tenant)
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{worker.url}/core/v1/updates/stream", params=route.build(target, "")) as ws,
    ):
        await ws.send_json({"type": "connection_init", "payload": {"token": token} if token else {}})
        message = await ws.receive(timeout=10)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return classify_close(ws.close_code or message.data, message.extra)
        assert json.loads(message.data)["type"] == "subscribed", message.data
        return ALLOWED


CALLERS = {
    "rest": call_rest,
    "graphql": call_graphql,
    "ws": call_ws,
    "grpc": call_grpc,
    "stream": call_stream,
}


@pytest.mark.parametrize(("route", "case"), matrix())
async def test_security_matrix(secure_worker: WorkerProcess, tenant: Tenant, route: Route, case: str) -> None:
    RAN.append(f"{route.name}-{case}")
    outcome = await CALLERS[route.transport](secure_worker, route, case, tenant)
    assert outcome == CASES[case], f"{route.name} / {case}: expected {CASES[case]}, got {outcome}"


# -- Shopify's routes: public to the API-key layer, authenticated by Shopify's HMAC (views/shopify.py) --
# Merchant and permission cases do not apply (Shopify signs as the app, not as a merchant's user).
SHOPIFY_SECRET = "dev-only-shopify-secret"
SHOPIFY_CASES = {
    # route: {case: expected status}
    "GET /shopify/install": {
        "valid": 302,
        "no_credentials": 401,
        "bad_signature": 401,
        "expired_token": 401,
        "bad_shop": 400,
    },
    "GET /shopify/callback": {
        "no_credentials": 401,
        "bad_signature": 401,
        "expired_token": 401,
        "replayed_signature": 401,
    },
    "POST /shopify/session": {"no_credentials": 401, "bad_signature": 401, "expired_token": 401},
    "POST /shopify/webhooks/{topic}": {
        "valid": 200,
        "no_credentials": 401,
        "bad_signature": 401,
        "replayed_signature": 200,
        "bad_shop": 400,
    },
}


def shopify_matrix() -> list[Any]:
    return [
        pytest.param(route, case, status, id=f"{route}-{case}")
        for route, cases in SHOPIFY_CASES.items()
        for case, status in cases.items()
    ]


def _signed_query(case: str, extra: dict[str, str]) -> str:
    from urllib.parse import urlencode

    from core_app.domain.shopify import sign_query

    stamp = int(time.time()) - (3600 if case == "expired_token" else 0)
    shop = "not a shop" if case == "bad_shop" else f"matrix-{uuid.uuid4().hex[:8]}.myshopify.com"
    params = {"shop": shop, "timestamp": str(stamp)} | extra
    if case == "no_credentials":
        return urlencode(params)
    secret = "not-the-app-secret" if case == "bad_signature" else SHOPIFY_SECRET
    return urlencode(params | {"hmac": sign_query(secret, params)})


async def _session_call(http: aiohttp.ClientSession, worker: WorkerProcess, case: str) -> tuple[int, Any]:
    import jwt

    now, shop = int(time.time()), f"matrix-{uuid.uuid4().hex[:8]}.myshopify.com"
    claims = {"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": "dev-shopify-key"}
    claims |= {
        "sub": "1",
        "jti": str(uuid.uuid4()),
        "nbf": now - 5,
        "exp": now + (-60 if case == "expired_token" else 60),
    }
    secret = "not-the-app-secret-00000000000000000" if case == "bad_signature" else SHOPIFY_SECRET
    headers = {} if case == "no_credentials" else {"Authorization": "Bearer " + jwt.encode(claims, secret)}
    async with http.post(f"{worker.url}/shopify/session", headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def call_shopify(worker: WorkerProcess, route: str, case: str) -> tuple[int, Any]:
    from core_app.domain.shopify import sign_body

    async with aiohttp.ClientSession() as http:
        if route == "POST /shopify/session":
            return await _session_call(http, worker, case)
        if route != "POST /shopify/webhooks/{topic}":
            path = route.split()[1]
            extra = {"code": "c0de", "state": "never-issued"} if path.endswith("callback") else {}
            url = f"{worker.url}{path}?{_signed_query(case, extra)}"
            async with http.get(url, allow_redirects=False) as r:
                return r.status, r.headers.get("Location")
        body = json.dumps({"id": 1, "email": "someone@example.com"}).encode()
        shop = "evil.com" if case == "bad_shop" else "matrix.myshopify.com"
        headers = {
            "X-Shopify-Topic": "customers/update",
            "X-Shopify-Shop-Domain": shop,
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Hmac-Sha256": sign_body(
                "not-the-app-secret" if case == "bad_signature" else SHOPIFY_SECRET, body
            ),
        }
        if case == "no_credentials":
            del headers["X-Shopify-Hmac-Sha256"]
        url = f"{worker.url}/shopify/webhooks/customers/update"
        for _ in range(2 if case == "replayed_signature" else 1):
            async with http.post(url, data=body, headers=headers) as r:
                answer = r.status, await r.json(content_type=None)
        return answer


@pytest.mark.parametrize(("route", "case", "expected"), shopify_matrix())
async def test_shopify_route_matrix(
    secure_worker: WorkerProcess, route: str, case: str, expected: int
) -> None:
    RAN.append(f"{route}-{case}")
    status, detail = await call_shopify(secure_worker, route, case)
    assert status == expected, f"{route} / {case}: {status} {detail}"
    if route == "GET /shopify/install" and status == 302:
        from urllib.parse import urlsplit

        assert urlsplit(detail).hostname.endswith(".myshopify.com")
    if case == "replayed_signature" and route.startswith("POST"):
        assert detail == {"status": "duplicate"}  # the second delivery is not processed again


# -- injection tries: refused or handled as input errors, never a 5xx and never someone else's data --

SQLISH = ["' OR '1'='1", "1; DROP TABLE customers; --", "\\x00", "${jndi:ldap://x}", "../../etc/passwd"]


@pytest.mark.parametrize("value", SQLISH)
async def test_sql_looking_ids_are_input_errors(
    secure_worker: WorkerProcess, tenant: Tenant, value: str
) -> None:
    key = tenant.keys[VIEW]
    async with aiohttp.ClientSession() as http:
        for params in (
            {"merchant_id": value, "customer_id": tenant.customer_id},
            {"merchant_id": tenant.merchant_id, "customer_id": value},
        ):
            query = aiohttp.helpers.URL.build(path="/core/v1/customers", query=params)
            path_qs = query.raw_path_qs
            async with http.get(secure_worker.url + path_qs, headers=key.headers("GET", path_qs)) as r:
                assert r.status in (400, 403), await r.text()
        token = bearer(mint_jwt(tenant.merchant_id, [VIEW]))
        body = {"query": GQL_CUSTOMER, "variables": {"m": tenant.merchant_id, "c": value}}
        async with http.post(f"{secure_worker.url}/graphql", json=body, headers=token) as r:
            answer = await r.json()
            assert r.status == 200 and answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_sql_looking_payloads_are_stored_as_data(secure_worker: WorkerProcess, tenant: Tenant) -> None:
    key = tenant.keys[EDIT]
    body = json.dumps(
        {
            "merchant_id": tenant.merchant_id,
            "email": "x'); DROP TABLE customers;--@example.com",
            "metadata": {"note": SQLISH[1], "'; DELETE FROM merchants; --": 1},
        }
    ).encode()
    async with aiohttp.ClientSession() as http:
        headers = key.headers("POST", "/core/v1/customers", body) | {"Content-Type": "application/json"}
        async with http.post(f"{secure_worker.url}/core/v1/customers", data=body, headers=headers) as r:
            assert r.status in (201, 400), await r.text()


@pytest.mark.parametrize(
    ("label", "body", "statuses"),
    [
        ("oversized body", b'{"a": "' + b"x" * (1024 * 1024) + b'"}', {413}),
        ("deeply nested json", b"[" * 100_000 + b"]" * 100_000, {400, 413}),
        ("nested just under the parser limit", b'{"metadata":' + b'{"a":' * 900 + b"1" + b"}" * 901, {400}),
        (
            "huge json",
            json.dumps({"metadata": {f"k{i}": "v" * 50 for i in range(15_000)}}).encode(),
            {400, 201},
        ),
    ],
)
async def test_hostile_rest_bodies(
    secure_worker: WorkerProcess, tenant: Tenant, label: str, body: bytes, statuses: set[int]
) -> None:
    key = tenant.keys[EDIT]
    if body.startswith(b'{"metadata"'):
        body = (
            b'{"merchant_id": "%s", "email": "%s", ' % (tenant.merchant_id.encode(), email().encode())
            + body[1:]
        )
    headers = key.headers("POST", "/core/v1/customers", body) | {"Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{secure_worker.url}/core/v1/customers", data=body, headers=headers) as r,
    ):
        assert r.status in statuses, f"{label}: {r.status} {(await r.text())[:300]}"


@pytest.mark.parametrize(
    ("label", "payload"),
    [
        (
            "deep selection",
            {"query": '{ getCustomer(merchant_id: "m", customer_id: "c") ' + "{ id " * 12 + "}" * 13},
        ),
        ("parser-deep document", {"query": "{ a " * 3000 + "}" * 3000}),
        ("alias flood", {"query": "{" + " ".join(f"a{i}: __typename" for i in range(500)) + "}"}),
        ("huge variables", {"query": GQL_SETTINGS, "variables": {"m": "x" * 500_000}}),
        (
            "introspection bomb",
            {
                "query": "{ __schema { types { fields { type { fields { type { fields {"
                " type { fields { name } } } } } } } } } }"
            },
        ),
    ],
)
async def test_hostile_graphql_is_refused_cleanly(
    secure_worker: WorkerProcess, tenant: Tenant, label: str, payload: dict
) -> None:
    headers = bearer(mint_jwt(tenant.merchant_id, [VIEW]))
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{secure_worker.url}/graphql", json=payload, headers=headers) as r,
    ):
        assert r.status in (200, 400, 413), f"{label}: {r.status}"
        if r.status == 200:
            answer = await r.json()
            assert answer.get("errors") and not answer.get("data"), f"{label}: {answer}"


async def test_deeply_nested_graphql_json_body_is_a_400(secure_worker: WorkerProcess, tenant: Tenant) -> None:
    headers = bearer(mint_jwt(tenant.merchant_id, [VIEW])) | {"Content-Type": "application/json"}
    body = b'{"query": "{ __typename }", "variables": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{secure_worker.url}/graphql", data=body, headers=headers) as r,
    ):
        assert r.status == 400


@pytest.mark.parametrize(
    ("label", "extra", "statuses"),
    [
        ("nested loyalty_config", {"deep": json.loads('{"a":' * 900 + "1" + "}" * 900)}, {200, 400}),
        ("NUL in loyalty_config", {"note": "\u0000"}, {200, 400}),
        ("huge loyalty_config", {f"k{i}": "v" * 50 for i in range(15_000)}, {200, 400}),
        ("sql in loyalty_config", {"note": SQLISH[1]}, {200, 400}),
    ],
)
async def test_hostile_settings_bodies(
    secure_worker: WorkerProcess, tenant: Tenant, label: str, extra: dict, statuses: set[int]
) -> None:
    body = json.dumps(
        {"merchant_id": tenant.merchant_id, "rfm_thresholds": THRESHOLDS, "loyalty_config": CONFIG | extra}
    ).encode()
    headers = tenant.keys[FULL].headers("POST", "/core/v1/settings", body) | {
        "Content-Type": "application/json"
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{secure_worker.url}/core/v1/settings", data=body, headers=headers) as r,
    ):
        assert r.status in statuses, f"{label}: {r.status} {(await r.text())[:300]}"
