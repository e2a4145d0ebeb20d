"""Answer an API command on the Redis channel its caller waits on."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable
from typing import Any, Protocol

from core_app.domain.errors import Conflict, DomainError, NotFound, ValidationFailed
from core_app.retry import infra_retry

log = logging.getLogger(__name__)


class ReplyChannel(Protocol):
    """Where replies go: the worker's Redis (its `publish`)."""

    def publish(self, channel: str, message: str) -> Awaitable[Any]: ...


def error_reply(exc: DomainError) -> dict[str, Any]:
    kind = {ValidationFailed: "invalid", NotFound: "not_found", Conflict: "conflict"}.get(type(exc), "error")
    return {"ok": False, "kind": kind, "field": getattr(exc, "field", None), "message": str(exc)}


async def outcome_of(command: dict[str, Any], work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """The reply to `command`: `work`'s result, its domain error, or an opaque internal error."""
    try:
        return {"ok": True, "result": await work}
    except DomainError as exc:
        return error_reply(exc)
    except Exception as exc:
        log.exception("command failed", extra={"kind": command.get("kind")})
        return {
            "ok": False,
            "kind": "error",
            "field": None,
            "message": f"internal error: {type(exc).__name__}",
        }


async def run_and_reply(
    replies: ReplyChannel, command: dict[str, Any], work: Awaitable[dict[str, Any]]
) -> None:
    """Await `work` and publish its result (or its error) to `command["reply_to"]`."""
    reply = await outcome_of(command, work)

    async def send_reply() -> None:
        await replies.publish(command["reply_to"], json.dumps(reply))

    await infra_retry()(send_reply)
