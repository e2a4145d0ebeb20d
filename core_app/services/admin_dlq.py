"""`GET /core/v1/admin/dlq`: a merchant's dead letters for its operators (permission `admin:full`).

Tenant isolation: only letters keyed `{merchant_id}:...` by the caller's merchant are listed (a
letter keyed some other way names no merchant, and only `core dlq list` shows it). Audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from core_app.domain.errors import ValidationFailed
from core_app.domain.events import optional_text, parse_uuid
from core_app.security.principal import FULL, Principal
from core_app.services.dead_letters import DeadLetter, Filters
from core_app.services.ports import AuditTrail, Guard

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


class DeadLetterReader(Protocol):
    """Reads `core.dlq` (core_app/services/dead_letters.DeadLetterService is one)."""

    async def list(self, filters: Filters, limit: int | None = None) -> list[DeadLetter]: ...


class AdminDeadLetters:
    def __init__(self, letters: DeadLetterReader, guard: Guard, audit: AuditTrail) -> None:
        self.letters = letters
        self.guard = guard
        self.audit = audit

    async def list(
        self,
        principal: Principal | None,
        merchant_id: Any,
        topic: Any = None,
        reason: Any = None,
        since: Any = None,
        limit: Any = None,
    ) -> list[dict[str, Any]]:
        """The merchant's dead letters, oldest first (at most `limit`), with their reasons."""
        merchant_id = parse_uuid(merchant_id, "merchant_id")
        caller = await self.guard.guard(principal, merchant_id, FULL)
        filters = Filters(
            topic=optional_text(topic or None, "topic"),
            reason=optional_text(reason or None, "reason"),
            since=parse_since(since),
            merchant_id=merchant_id,
        )
        letters = await self.letters.list(filters, limit=parse_limit(limit))
        await self._audit(caller, merchant_id, filters, len(letters))
        return [letter.summary() for letter in letters]

    async def _audit(self, caller: Principal | None, merchant_id: str, filters: Filters, listed: int) -> None:
        actor = f"{caller.auth_method}:{caller.subject}" if caller is not None else "unknown"
        await self.audit.write(
            merchant_id=merchant_id,
            actor=actor,
            action="dlq.list",
            entity_type="dead_letters",
            entity_id=None,
            details={"topic": filters.topic, "reason": filters.reason, "listed": listed},
        )
