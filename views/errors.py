"""Domain errors as HTTP: 4xx naming the field, never a 500 for bad input (views/pipeline.py)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from core_app.domain.errors import Conflict, DomainError, NotFound, Unavailable, ValidationFailed
from core_app.domain.json_depth import nesting_message, too_deep_member
from core_app.domain.profile import MAX_METADATA_DEPTH
from views.refusals import error_response, log_refusal

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def json_object(request: web.Request) -> dict[str, object]:
    """The request body as a JSON object, or a 400 naming `body` (or the member nested too deeply)."""
    try:
        body = await request.json()
    except RecursionError:  # nested deeper than the parser goes: say where, not "not JSON"
        member = too_deep_member(await request.text(), MAX_METADATA_DEPTH)
        raise ValidationFailed(member or "body", nesting_message(MAX_METADATA_DEPTH)) from None
    except ValueError:
        raise ValidationFailed("body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise ValidationFailed("body", "must be a JSON object")
    return body


def error_body(status: int, message: str, field: str | None = None, code: str | None = None) -> web.Response:
    error: dict[str, str] = {"message": message}
    if code is not None:
        error["code"] = code
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error}, status=status)


def domain_error_status(exc: DomainError) -> tuple[int, str, str, str | None]:
    """(status, code, message, field) of a domain error: 400, 404, 409 or 503."""
    if isinstance(exc, ValidationFailed):
        return 400, "BAD_USER_INPUT", exc.reason, exc.field
    if isinstance(exc, NotFound):
        return 404, "NOT_FOUND", str(exc), None
    if isinstance(exc, Conflict):
        return 409, "CONFLICT", exc.reason, exc.field
    if isinstance(exc, Unavailable):
        return 503, "UNAVAILABLE", str(exc), None
    return 500, "INTERNAL_SERVER_ERROR", "internal error", None


def domain_error_response(exc: DomainError, request: web.Request | None = None) -> web.Response:
    """The HTTP answer to a domain error, naming the field where there is one; logged once."""
    status, code, message, field = domain_error_status(exc)
    if status == 500:
        log.error("unmapped domain error", exc_info=exc)
    if request is None:
        return error_body(status, message, field, code)
    if status != 500:
        log_refusal(request, status, code, field)
    return error_response(request, status, message, code, field)
