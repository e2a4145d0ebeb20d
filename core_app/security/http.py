"""Who is calling over HTTP: the security half of the request pipeline (views/pipeline.py), which
runs for every route, present and future.

| requests                                   | credentials                                        |
| ------------------------------------------ | -------------------------------------------------- |
| `/health`, `/live`, `/ready`, `/metrics`   | none                                               |
| GET/HEAD `/admin/imports` (+ `.js`, `.css`)| none: static files holding no data; the page calls |
|                                            | the API below with the operator's JWT (D80)        |
| GET/HEAD `/favicon.ico`                    | none: no route serves it, so it answers 404        |
| `/shopify/*` (install, callback, webhooks) | Shopify's HMAC, checked by each handler (D121)     |
| `/internal/*` (worker to worker)           | `X-Internal-Token` (INTERNAL_TOKEN)                |
| WebSocket upgrades (any path)              | `Authorization: Bearer <JWT>` or `?access_token=`, |
|                                            | or none: then the WS module authenticates the      |
|                                            | connection-init payload                            |
| `/graphql` (HTTP)                          | `Authorization: Bearer <JWT>` (the GraphiQL page   |
|                                            | itself, a GET with no query, needs none)           |
| everything else (`/core/v1/*`, unknown)    | `X-Api-Key` + `X-Timestamp` + `X-Signature`        |

Authenticated requests are admitted (IP allow-list, replay, rate limit) and run with the principal in
`request[PRINCIPAL]` and in the context (`current_principal`), where use cases' `guard()` finds
it. Security refusals become JSON errors: 401 with `WWW-Authenticate`, 403, 429 with `Retry-After`,
503 with `Retry-After`. A WebSocket upgrade may carry its token in the `access_token` query parameter
instead of the header (browsers cannot set headers on one): either way it is checked before the
upgrade (docs/decisions.md D154).
"""

from __future__ import annotations

from aiohttp import web

from core_app.security import metrics
from core_app.security.errors import RateLimited, SecurityError, SecurityUnavailable, Unauthenticated
from core_app.security.layer import SecurityLayer
from core_app.security.principal import Principal

PUBLIC_PATHS = frozenset({"/health", "/live", "/ready", "/metrics"})
# The admin page's static files (views/admin_page.py): public for GET and HEAD only (another method
# needs credentials as anywhere); they hold no data, and the page calls the API with a JWT (D80).
PUBLIC_PAGES = frozenset(
    {
        "/admin/admin.js",  # the pages' shared script
        *("/admin/imports", "/admin/imports.js", "/admin/imports.css"),
        *("/admin/customers", "/admin/customers.js", "/admin/customers.css"),  # the customers view
    }
)
# Served by no route, asked for by every browser: public for GET and HEAD, so the answer is the 404 it
# expects rather than a 401 (which would also count as a failed authentication; D185).
PUBLIC_MISSING = frozenset({"/favicon.ico"})
PUBLIC_PAGE_METHODS = frozenset({"GET", "HEAD"})
# Shopify's install redirects and webhooks (views/shopify.py) carry no API key or JWT: every handler
# under this prefix authenticates the request by Shopify's HMAC (SHOPIFY_API_SECRET) itself.
SHOPIFY_PREFIX = "/shopify/"
INTERNAL_PREFIX = "/internal/"
INTERNAL_HEADER = "X-Internal-Token"
GRAPHQL_PATH = "/graphql"
ACCESS_TOKEN_PARAM = "access_token"  # a WebSocket upgrade's JWT, for clients that cannot set headers
UNMATCHED_ROUTE = "unmatched"  # the catch-all route's name (views/pipeline.py): paths no route serves
# request[PRINCIPAL] is the caller (None until a WS connection-init authenticates it).
PRINCIPAL = web.RequestKey("principal", object)


def is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def endpoint_name(request: web.Request) -> str:
    """The rate-limit endpoint: the route's pattern, so ids in paths do not make new counters."""
    resource = getattr(request.match_info.route, "resource", None)
    unmatched = resource is None or resource.name == UNMATCHED_ROUTE
    return endpoint_of(request.method, UNMATCHED_ROUTE if unmatched else resource.canonical)


def endpoint_of(method: str, route_path: str) -> str:
    """The rate-limit endpoint of a route (method and template)."""
    return "graphql" if route_path == GRAPHQL_PATH else f"{method}:{route_path}"


def transport_of(request: web.Request) -> str:
    if is_websocket(request):
        return "websocket"
    if request.path == GRAPHQL_PATH:
        return "graphql"
    if request.path.startswith(INTERNAL_PREFIX):
        return "internal"
    return "rest"


def refusal(exc: SecurityError, transport: str, path: str = "") -> web.Response:
    """The HTTP answer to a refusal; on `/graphql` in the GraphQL error shape (docs/decisions.md D152)."""
    metrics.refused.labels(transport, str(exc.http_status), exc.code).inc()
    if path == GRAPHQL_PATH:
        body: dict[str, object] = {"errors": [{"message": exc.reason, "extensions": exc.extensions}]}
    else:
        body = exc.body()
    response = web.json_response(body, status=exc.http_status)
    if isinstance(exc, Unauthenticated):
        scheme = "HMAC-SHA256" if transport == "rest" else 'Bearer realm="core"'
        response.headers["WWW-Authenticate"] = scheme
    elif isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, SecurityUnavailable):
        response.headers["Retry-After"] = "1"
    return response


def is_public(request: web.Request) -> bool:
    return is_public_route(request.method, request.path)


def is_public_route(method: str, path: str) -> bool:
    """Whether `method path` needs no credentials (also right for a route: public paths hold no
    template variables but under the Shopify prefix, so a route's template is public exactly when the
    paths it matches are)."""
    return (
        path in PUBLIC_PATHS
        or ((path in PUBLIC_PAGES or path in PUBLIC_MISSING) and method in PUBLIC_PAGE_METHODS)
        or path.startswith(SHOPIFY_PREFIX)
    )


def is_graphiql_page(request: web.Request) -> bool:
    return (
        request.method == "GET"
        and "query" not in request.query
        and "text/html" in request.headers.get("Accept", "")
    )


async def authenticate(
    layer: SecurityLayer, request: web.Request, endpoint: str | None = None
) -> Principal | None:
    """The caller, or None where a later step authenticates (WS connection-init, GraphiQL page).

    `endpoint`: the route's rate-limit endpoint when the caller knows it (else read from the request).
    """
    path = request.path
    if path.startswith(INTERNAL_PREFIX):
        return layer.authenticate_internal(request.headers.get(INTERNAL_HEADER))
    client_ip = layer.proxies.client_ip(request.remote, request.headers.get("X-Forwarded-For"))
    endpoint = endpoint or endpoint_name(request)
    if is_websocket(request) or path == GRAPHQL_PATH:
        authorization = request.headers.get("Authorization")
        if authorization is None and is_websocket(request):
            token = request.query.get(ACCESS_TOKEN_PARAM)
            if token is None:
                return None  # the WS module authenticates connection_init
            authorization = f"Bearer {token}"
        if authorization is None and is_graphiql_page(request):
            return None
        principal = await layer.authenticate_bearer(authorization, client_ip)
        layer.gate.enforce(await layer.admission(principal, endpoint))
        return principal
    # bounded by client_max_size (413 above it); a request without a body (a GET) skips the read
    body = await request.read() if request.body_exists else b""
    principal, replay_id = await layer.authenticate_signed(
        request.method, request.raw_path, request.headers, body, client_ip
    )
    # The admission future is awaited here, not through layer.admit(): one coroutine layer less to
    # resume per request (core_app/security/gate.py).
    layer.gate.enforce(await layer.admission(principal, endpoint, replay_id=replay_id))
    return principal
