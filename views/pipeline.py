"""The one pipeline every HTTP request passes: latency, the caller, and domain errors as HTTP.

For each request, in order:
1. a read-source holder (core_app.read_source) and a start time;
2. the caller (core_app/security/http.py): public paths pass without one; otherwise the request is
   authenticated and admitted, or refused with 401/403/429/503;
3. the handler, run as that caller (`current_principal`, where use cases' `guard()` finds it). A
   SecurityError from `guard()` is refused the same way; a domain error becomes a 4xx/503 JSON body
   naming the field (views/errors.py); an error aiohttp raises (413, 404, 405, ...) becomes JSON in
   the transport's error shape (views/refusals.py); each of these is one INFO/WARNING log line, no
   traceback; a dependency that fails mid-request (PostgreSQL or Redis restarting, a peer
   unreachable: `core_app.retry.TRANSIENT_ERRORS`) is a 503 `UNAVAILABLE` naming it, as gRPC answers
   UNAVAILABLE (docs/decisions.md D209); anything else is logged at ERROR and answered 500;
4. `X-Core-Source` on a response whose request read a customer or settings, and
   `core_request_duration_seconds{transport="rest"|"graphql", route="GET /core/v1/customers",
   status="200"}`. Unmatched paths share `route="unmatched"`, so label cardinality stays bounded
   whatever clients send. WebSocket upgrades are connections, not requests, and are not observed.

It wraps each route's handler rather than running as an aiohttp middleware: an app with any
middleware also runs aiohttp's own `_fix_request_current_app` layer, and the two cost about 5 us of
a 60 us bare request (docs/decisions.md D43). Paths no route serves reach a catch-all route, also
wrapped, that answers 404 or 405 as aiohttp would: unknown paths still need credentials and are
observed as `route="unmatched"`.

What depends only on the route (its labels, whether it is public, its rate-limit endpoint) is worked
out once, when the route is wrapped (`RouteFacts`), not per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from core_app import log_context, metrics, read_source
from core_app.domain.errors import DomainError
from core_app.retry import TRANSIENT_ERRORS
from core_app.security.errors import SecurityError
from core_app.security.http import (
    GRAPHQL_PATH,
    PRINCIPAL,
    UNMATCHED_ROUTE,
    authenticate,
    endpoint_of,
    is_public,
    is_public_route,
    refusal,
    transport_of,
)
from core_app.security.layer import SecurityLayer
from core_app.security.principal import DISABLED, current_principal
from views.errors import Handler, domain_error_response
from views.refusals import (
    REQUEST_ID_HEADER,
    error_response,
    http_error_response,
    log_refusal,
    request_id,
)
from views.wiring import components_of

log = logging.getLogger(__name__)

UNMATCHED = ("rest", "unmatched")
Route = tuple[str, str, Handler]
Pipe = Callable[..., Handler]

_route_labels: dict[tuple[object, str], tuple[str, str]] = {}  # (resource, method) -> labels


def labels_of(method: str, path: str) -> tuple[str, str]:
    """(transport, route label) of a route: its method and template, never a raw path."""
    return ("graphql" if path == GRAPHQL_PATH else "rest", f"{method} {path}")


def route_labels(request: web.Request) -> tuple[str, str]:
    """(transport, route label) of a request, from its matched route template."""
    resource = request.match_info.route.resource
    if resource is None:
        return UNMATCHED
    labels = _route_labels.get((resource, request.method))
    if labels is None:
        labels = labels_of(request.method, resource.canonical)
        if resource.name == UNMATCHED_ROUTE:  # the catch-all: one label whatever the method
            labels = UNMATCHED
        _route_labels[resource, request.method] = labels
    return labels


@dataclass(frozen=True)
class RouteFacts:
    """What the pipeline knows of a route before any request: its labels, whether it is public and
    its rate-limit endpoint. Worked out once per route; per request only for a route whose method
    is "*" or not given (GraphQL, the catch-all), where they depend on the request."""

    labels: tuple[str, str] | None = None
    public: bool | None = None
    endpoint: str | None = None

    @classmethod
    def of(cls, method: str | None, path: str | None) -> RouteFacts:
        if method is None or path is None or method == "*":
            return cls()
        return cls(labels_of(method, path), is_public_route(method, path), endpoint_of(method, path))


def build_app(
    routes: Iterable[Route], get_layer: Callable[[], SecurityLayer] | None = None, **options: object
) -> web.Application:
    """An aiohttp app serving `routes`, each behind the pipeline, and the catch-all route last.

    `get_layer`: the security layer; by default the worker's, from the app's components."""
    pipe = build_pipeline(get_layer)
    app = web.Application(**options)  # type: ignore[arg-type]
    for method, path, handler in routes:
        app.router.add_route(method, path, pipe(handler, method, path))
    app.router.add_route("*", "/{path:.*}", pipe(unmatched), name=UNMATCHED_ROUTE)
    return app


async def unmatched(request: web.Request) -> web.StreamResponse:
    """404, or 405 with `Allow` when another route serves the path with other methods."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.name != UNMATCHED_ROUTE:
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        text = f"method {request.method} is not allowed here; allowed: {', '.join(sorted(allowed))}"
        raise web.HTTPMethodNotAllowed(request.method, allowed, text=text)
    raise web.HTTPNotFound(text="no route serves this path")


def build_pipeline(get_layer: Callable[[], SecurityLayer] | None = None) -> Pipe:
    """`pipe(handler, method, path)`: the handler of the route `method path` behind the pipeline (see
    the module's docstring). Without `method` and `path`, what depends on them is worked out per
    request."""

    def pipe(handler: Handler, method: str | None = None, path: str | None = None) -> Handler:
        return _piped(handler, get_layer, RouteFacts.of(method, path))

    return pipe


def _piped(handler: Handler, get_layer: Callable[[], SecurityLayer] | None, facts: RouteFacts) -> Handler:
    fixed_labels, fixed_public, endpoint = facts.labels, facts.public, facts.endpoint
    ok_labels = (*fixed_labels, "200") if fixed_labels else None

    async def pipeline(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        sources = read_source.begin()
        as_caller = None
        status: int | None = None
        # Log lines of this request carry its locale, and its merchant once known (D149); each
        # request is its own task, so nothing outlives it.
        log_context.bind(locale=log_context.locale_of(request.headers.get("Accept-Language")))
        try:
            try:
                if not (is_public(request) if fixed_public is None else fixed_public):
                    layer = get_layer() if get_layer is not None else components_of(request).security
                    principal = await authenticate(layer, request, endpoint) if layer.enabled else DISABLED
                    request[PRINCIPAL] = principal
                    as_caller = current_principal.set(principal)
                    if principal is not None and principal.merchant_id:
                        log_context.bind(merchant_id=principal.merchant_id)
                response = await handler(request)
            except SecurityError as exc:
                response = refusal(exc, transport_of(request), request.path)
                response.headers[REQUEST_ID_HEADER] = request_id(request)
                log_refusal(request, exc.http_status, exc.code, merchant_id=exc.details.get("merchant_id"))
            except DomainError as exc:
                response = domain_error_response(exc, request)
            except web.HTTPException as exc:
                if exc.status < 400:  # a redirect or a success raised as an exception
                    status = exc.status
                    raise
                response = http_error_response(request, exc)
            except TRANSIENT_ERRORS as exc:
                response = unavailable_response(request, exc)
            except Exception:
                log.exception("unhandled error", extra={"path": request.path})
                response = error_response(request, 500, "internal error", "INTERNAL_SERVER_ERROR")
            if isinstance(response, web.WebSocketResponse):
                return response
            status = response.status
            source = read_source.summary()
            if source is not None and not response.prepared:
                response.headers[read_source.HEADER] = source
            return response
        finally:
            if as_caller is not None:
                current_principal.reset(as_caller)
            read_source.end(sources)
            if status is not None:
                elapsed = time.perf_counter() - started
                if status == 200 and ok_labels is not None:
                    metrics.request_duration.observe(ok_labels, elapsed)
                else:
                    labels = fixed_labels or route_labels(request)
                    metrics.request_duration.observe((*labels, str(status)), elapsed)

    return pipeline


def unavailable_response(request: web.Request, exc: BaseException) -> web.Response:
    """A dependency failed mid-request: 503, retryable, naming what failed (one WARNING, no traceback)."""
    what = dependency_of(exc)
    log.warning("request failed: %s unavailable", what, extra={"path": request.path, "error": repr(exc)})
    log_refusal(request, 503, "UNAVAILABLE")
    return error_response(
        request, 503, f"{what} unavailable ({type(exc).__name__}); retry shortly", "UNAVAILABLE"
    )


def dependency_of(exc: BaseException) -> str:
    module = type(exc).__module__
    if module.startswith("psycopg2"):
        return "PostgreSQL"
    if module.startswith("redis"):
        return "Redis"
    return "a dependency"
