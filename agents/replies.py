"""Answer an API command on the Redis channel its caller waits on."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable
from typing import Any

from core_app.domain.errors import Conflict, DomainError, NotFound, ValidationFailed
from core_app.retry import infra_retry
from core_app.runtime import get_runtime

log = logging.getLogger(__name__)


def error_reply(exc: DomainError) -> dict[str, Any]:
    kind = {ValidationFailed: "invalid", NotFound: "not_found", Conflict: "conflict"}.get(type(exc), "error")
    return {"ok": False, "kind": kind, "field": getattr(exc, "field", None), "message": str(exc)}


async def run_and_reply(command: dict[str, Any], work: Awaitable[dict[str, Any]]) -> None:
    """Await `work` and publish its result (or its error) to `command["reply_to"]`."""
    try:
        reply: dict[str, Any] = {"ok": True, "result": await work}
    except DomainError as exc:
        reply = error_reply(exc)
    except Exception as exc:
        log.exception("command failed", extra={"kind": command.get("kind")})
        reply = {
            "ok": False,
            "kind": "error",
            "field": None,
            "message": f"internal error: {type(exc).__name__}",
        }

    async def send_reply() -> None:
        await get_runtime().redis.publish(command["reply_to"], json.dumps(reply))

    await infra_retry()(send_reply)
