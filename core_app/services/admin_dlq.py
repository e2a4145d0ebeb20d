"""`GET /core/v1/admin/dlq`: a merchant's dead letters for its operators (permission `admin:full`).

Tenant isolation: only letters keyed `{merchant_id}:...` by the caller's merchant are listed (a
letter keyed some other way names no merchant, and only `core dlq list` shows it). Audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core_app.domain.errors import ValidationFailed
from core_app.domain.events import optional_text, parse_uuid
from core_app.runtime import Runtime
from core_app.security.audit import write_audit_async
from core_app.security.layer import guard
from core_app.security.principal import FULL
from core_app.services.dead_letters import Filters, read_letters

MAX_LIST = 500


def parse_since(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed("since", "must be an ISO-8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_limit(value: Any) -> int:
    if value is None:
        return 100
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise ValidationFailed("limit", f"must be an integer between 1 and {MAX_LIST}") from None
    if not 1 <= limit <= MAX_LIST:
        raise ValidationFailed("limit", f"must be an integer between 1 and {MAX_LIST}")
    return limit


async def list_dead_letters(
    runtime: Runtime,
    merchant_id: Any,
    topic: Any = None,
    reason: Any = None,
    since: Any = None,
    limit: Any = None,
) -> list[dict[str, Any]]:
    """The merchant's dead letters, oldest first (at most `limit`), with their reasons."""
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    principal = await guard(merchant_id, FULL)
    filters = Filters(
        topic=optional_text(topic or None, "topic"),
        reason=optional_text(reason or None, "reason"),
        since=parse_since(since),
        merchant_id=merchant_id,
    )
    wanted = parse_limit(limit)
    letters = await read_letters(runtime.settings, filters, limit=wanted)
    actor = f"{principal.auth_method}:{principal.subject}" if principal is not None else "unknown"
    await write_audit_async(
        runtime.pool,
        merchant_id=merchant_id,
        actor=actor,
        action="dlq.list",
        entity_type="dead_letters",
        entity_id=None,
        details={"topic": filters.topic, "reason": filters.reason, "listed": len(letters)},
    )
    return [letter.summary() for letter in letters]
