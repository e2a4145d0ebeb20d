"""Refused requests: one log line each, and errors in the shape of the transport that refused them.

A refusal (bad input, unknown id, missing credentials, a body too large, an unknown route) is the
caller's business, not a fault: it is logged once at INFO (WARNING for authentication, permission and
rate-limit refusals) with its status, code, field, merchant and request id, and no traceback. ERROR
and tracebacks are for faults only (docs/decisions.md D151).

Error bodies: REST `{"error": {"message", "code", "field"?}}`; on `/graphql` the GraphQL shape
`{"errors": [{"message", "extensions": {"code", "field"?}}]}` (D152).
"""

from __future__ import annotations

import logging
import re
import uuid
from http import HTTPStatus

from aiohttp import hdrs, web

from core_app.security.http import GRAPHQL_PATH, PRINCIPAL, UNMATCHED_ROUTE
from core_app.security.principal import normalise_merchant

log = logging.getLogger("core_app.refusals")

REQUEST_ID = web.RequestKey("request_id", str)
REQUEST_ID_HEADER = "X-Request-Id"
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
WARN_STATUSES = frozenset({401, 403, 429})
WARN_CODES = frozenset({"UNAUTHENTICATED", "FORBIDDEN", "FEATURE_DISABLED", "RATE_LIMITED"})

# Codes of the errors aiohttp and graphql-server raise themselves, by status.
HTTP_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    426: "UPGRADE_REQUIRED",
}


def request_id(request: web.Request) -> str:
    """The client's `X-Request-Id` when it is a sane token, else a new one; the same for the request."""
    known = request.get(REQUEST_ID)
    if known is not None:
        return known
    sent = request.headers.get(REQUEST_ID_HEADER, "")
    value = sent if _CLIENT_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
    request[REQUEST_ID] = value
    return value


def route_of(request: web.Request) -> str:
    """The route's template, never the raw path: a client may put anything in a path (an email)."""
    resource = getattr(request.match_info.route, "resource", None)
    if resource is None or resource.name == UNMATCHED_ROUTE:
        return UNMATCHED_ROUTE
    return resource.canonical


def code_of(status: int) -> str:
    if status in HTTP_CODES:
        return HTTP_CODES[status]
    try:
        return HTTPStatus(status).name
    except ValueError:
        return "ERROR"


def log_refusal(
    request: web.Request | None,
    status: int,
    code: str,
    field: str | None = None,
    merchant_id: object = None,
) -> None:
    """One line for a refused request (or a refused GraphQL field: `status` 200)."""
    level = logging.WARNING if status in WARN_STATUSES or code in WARN_CODES else logging.INFO
    if not log.isEnabledFor(level):
        return
    extra: dict[str, object] = {"status": status, "code": code, "field": field}
    if request is not None:
        principal = request.get(PRINCIPAL)
        merchant = normalise_merchant(merchant_id) or normalise_merchant(request.query.get("merchant_id"))
        if merchant is None and principal is not None:
            merchant = getattr(principal, "merchant_id", None)
        extra |= {
            "merchant_id": merchant,
            "request_id": request_id(request),
            "method": request.method,
            "route": route_of(request),
        }
    # The details in the message too: the plain-text format (LOG_JSON=false) does not print extras.
    details = " ".join(f"{name}={value}" for name, value in extra.items() if value is not None)
    log.log(level, f"request refused: {details}", extra=extra)


def error_response(
    request: web.Request, status: int, message: str, code: str, field: str | None = None
) -> web.Response:
    """An error in the shape of the request's transport (REST or GraphQL), with its request id."""
    if request.path == GRAPHQL_PATH:
        extensions = {"code": code} | ({"field": field} if field else {})
        body: dict[str, object] = {"errors": [{"message": message, "extensions": extensions}]}
    else:
        body = {"error": {"message": message, "code": code} | ({"field": field} if field else {})}
    response = web.json_response(body, status=status)
    response.headers[REQUEST_ID_HEADER] = request_id(request)
    return response


def http_error_response(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own errors (413, 404, 405, a bad WebSocket handshake...) as JSON, headers kept."""
    text = exc.text or ""
    message = text if text and text != f"{exc.status}: {exc.reason}" else exc.reason
    code = code_of(exc.status)
    response = error_response(request, exc.status, message, code)
    for name, value in exc.headers.items():
        if name not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH):
            response.headers[name] = value
    log_refusal(request, exc.status, code)
    return response
