"""Domain errors as HTTP: 4xx naming the field, never a 500 for bad input (views/pipeline.py)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from core_app.domain.errors import Conflict, DomainError, NotFound, Unavailable, ValidationFailed

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def json_object(request: web.Request) -> dict[str, object]:
    """The request body as a JSON object, or a 400 naming `body`."""
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise ValidationFailed("body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise ValidationFailed("body", "must be a JSON object")
    return body


def error_body(status: int, message: str, field: str | None = None) -> web.Response:
    error: dict[str, str] = {"message": message}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error}, status=status)


def domain_error_response(exc: DomainError) -> web.Response:
    """The HTTP answer to a domain error: 400, 404, 409 or 503 naming the field where there is one."""
    if isinstance(exc, ValidationFailed):
        return error_body(400, exc.reason, exc.field)
    if isinstance(exc, NotFound):
        return error_body(404, str(exc))
    if isinstance(exc, Conflict):
        return error_body(409, exc.reason, exc.field)
    if isinstance(exc, Unavailable):
        return error_body(503, str(exc))
    log.error("unmapped domain error", exc_info=exc)
    return error_body(500, "internal error")
