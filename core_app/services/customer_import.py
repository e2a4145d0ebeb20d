"""Customer import use cases, shared by REST, GraphQL and gRPC: start an import, list and get logs.

`start_import` validates what it can before accepting (source, URL syntax, the address policy, a
file:// path and its size, the merchant and its `customer_import_enabled` flag), writes the
`pending` log row, emits `import.initiated` and hands the job to the import agent. It returns at
once; progress is on core.updates, and the log row follows the run through the sink.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from core_app import topics
from core_app.customer_import.job import ImportJob
from core_app.customer_import.metrics import imports_initiated
from core_app.domain.customer_import import SHOPIFY_API, parse_file_url, parse_source, parse_status
from core_app.domain.errors import NotFound, Unavailable, ValidationFailed
from core_app.domain.events import parse_uuid
from core_app.ops import product_events
from core_app.security.flags import CUSTOMER_IMPORT
from core_app.security.principal import EDIT, VIEW, Principal
from core_app.services.ports import EventEncoder, EventPublisher, Guard, ImportFilePolicy, ImportLogs

log = logging.getLogger(__name__)

MAX_LIST = 100


def import_log_view(row: dict[str, Any]) -> dict[str, Any]:
    """The public shape of an import log (the URL without query string: signed URLs hold secrets)."""
    file_url = row.get("file_url")
    if file_url:
        try:
            file_url = parse_file_url(file_url).public
        except ValidationFailed:
            file_url = None
    return {
        "import_id": row["import_id"],
        "merchant_id": row["merchant_id"],
        "source": row["source"],
        "status": row["status"],
        "file_url": file_url,
        "record_count": row.get("record_count") or 0,
        "error_count": row.get("error_count") or 0,
        "error_log": row.get("error_log"),
        "failure_reason": row.get("failure_reason"),
        "created_at": row.get("created_at") or "",
        "updated_at": row.get("updated_at"),
    }


def _limit(value: Any) -> int:
    if value is None or value == "":
        return 50
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise ValidationFailed("limit", f"must be an integer between 1 and {MAX_LIST}") from None
    if not 1 <= limit <= MAX_LIST:
        raise ValidationFailed("limit", f"must be an integer between 1 and {MAX_LIST}")
    return limit


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CustomerImportService:
    """The import use cases over their ports; built once per worker (core_app/components.py)."""

    def __init__(
        self,
        logs: ImportLogs,
        files: ImportFilePolicy,
        guard: Guard,
        publisher: EventPublisher,
        encoder: EventEncoder,
    ) -> None:
        self.logs = logs
        self.files = files
        self.guard = guard
        self.publisher = publisher
        self.encoder = encoder

    async def start_import(
        self, principal: Principal | None, merchant_id: Any, source: Any, file_url: Any
    ) -> dict[str, Any]:
        merchant_id = parse_uuid(merchant_id, "merchant_id")
        caller = await self.guard.guard(principal, merchant_id, EDIT, flag=CUSTOMER_IMPORT)
        source = parse_source(source)
        if source == SHOPIFY_API:  # no file: the shop's Admin API (customer_import/shopify_source.py)
            file_url = await self.logs.shopify_source_url(merchant_id, file_url)
        parse_file_url(file_url)  # syntax first: no I/O for a malformed request
        if not await self.logs.merchant_exists(merchant_id):
            raise NotFound("merchant", merchant_id)
        url = await self.files.check(file_url)
        import_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        row = await self.logs.insert_log(import_id, merchant_id, source, url.public)
        job = ImportJob(import_id, merchant_id, source, url.url, _iso(now), int(time.time() * 1000))
        await self._hand_over(job, now)
        imports_initiated.labels(source).inc()
        product_events.capture("import_initiated", merchant_id, source=source)
        actor = caller.subject if caller else "unknown"
        details = {"source": source, "file_url": url.public}
        await self.logs.record_audit(merchant_id, actor, "import.start", import_id, details)
        log.info(
            "import initiated", extra={"import_id": import_id, "merchant_id": merchant_id, "source": source}
        )
        return import_log_view(row)

    async def _hand_over(self, job: ImportJob, now: datetime) -> None:
        """`import.initiated`, then the job for the agent; the log fails if either cannot be sent."""
        try:
            initiated = {
                "event_id": str(uuid.uuid4()),
                "import_id": job.import_id,
                "merchant_id": job.merchant_id,
                "source": job.source,
                "created_at": now,
            }
            value = await self.encoder.encode(topics.IMPORT_INITIATED, initiated)
            await self.publisher.publish(topics.IMPORT_INITIATED, job.import_id, value)
            await self.publisher.publish(topics.IMPORT_JOBS, job.import_id, job.to_json())
        except Exception as exc:
            log.exception("import not handed to the agent", extra={"import_id": job.import_id})
            reason = f"the import could not be queued: {type(exc).__name__}"
            await self.logs.fail_log(job.merchant_id, job.import_id, reason)
            raise Unavailable(reason) from None

    async def list_import_logs(
        self, principal: Principal | None, merchant_id: Any, status: Any = None, limit: Any = None
    ) -> list[dict[str, Any]]:
        """The merchant's import logs, newest first (from PostgreSQL: the sink lags the run by < 1 s)."""
        merchant_id = parse_uuid(merchant_id, "merchant_id")
        await self.guard.guard(principal, merchant_id, VIEW)
        wanted = parse_status(status)
        rows = await self.logs.list_logs(merchant_id, wanted, _limit(limit))
        return [import_log_view(row) for row in rows]

    async def get_import_log(
        self, principal: Principal | None, merchant_id: Any, import_id: Any
    ) -> dict[str, Any]:
        merchant_id = parse_uuid(merchant_id, "merchant_id")
        await self.guard.guard(principal, merchant_id, VIEW)
        import_id = parse_uuid(import_id, "import_id")
        row = await self.logs.fetch_log(merchant_id, import_id)
        if row is None:
            raise NotFound("import", import_id)
        return import_log_view(row)
