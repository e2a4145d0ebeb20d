"""Map domain errors to HTTP: 4xx naming the field, never a 500 for bad input."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from core_app.domain.errors import Conflict, FeatureDisabled, NotFound, Unavailable, ValidationFailed

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def json_object(request: web.Request) -> dict[str, object]:
    """The request body as a JSON object, or a 400 naming `body`."""
    try:
        body = await request.json()
    except ValueError:
        raise ValidationFailed("body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise ValidationFailed("body", "must be a JSON object")
    return body


def error_body(status: int, message: str, field: str | None = None) -> web.Response:
    error: dict[str, str] = {"message": message}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ValidationFailed as exc:
        return error_body(400, exc.reason, exc.field)
    except NotFound as exc:
        return error_body(404, str(exc))
    except Conflict as exc:
        return error_body(409, exc.reason, exc.field)
    except FeatureDisabled as exc:
        return error_body(403, exc.reason, exc.field)
    except Unavailable as exc:
        return error_body(503, str(exc))
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        return error_body(500, "internal error")
