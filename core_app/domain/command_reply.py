"""The caller's side of a command's reply: the owner's result, or the domain error it reported
(agents/replies.error_reply writes the other side)."""

from __future__ import annotations

from typing import Any

from core_app.domain.errors import Conflict, NotFound, ValidationFailed


def raise_for_error(reply: dict[str, Any]) -> dict[str, Any]:
    if reply.get("ok"):
        return dict(reply["result"])
    field, message = reply.get("field") or "request", reply.get("message", "")
    reason = message.split(": ", 1)[-1]
    match reply.get("kind"):
        case "invalid":
            raise ValidationFailed(field, reason)
        case "not_found":
            raise NotFound(field, message)
        case "conflict":
            raise Conflict(field, reason)
    raise RuntimeError(f"the owner failed the command: {message}")
