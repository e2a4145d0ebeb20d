"""Import use cases, shared by REST, GraphQL and gRPC: start an import, list and get import logs.

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

import psycopg2.errors

from core_app import topics
from core_app.domain.errors import NotFound, Unavailable, ValidationFailed
from core_app.domain.events import parse_uuid
from core_app.domain.imports import SHOPIFY_API, parse_file_url, parse_source, parse_status
from core_app.imports import store
from core_app.imports.fetch import check_file_url
from core_app.imports.job import ImportJob
from core_app.imports.metrics import imports_initiated
from core_app.ops import product_events
from core_app.repository import merchant_exists, record_audit
from core_app.retry import infra_retry
from core_app.runtime import get_runtime
from core_app.security import EDIT, VIEW, guard
from core_app.security.flags import CUSTOMER_IMPORT
from core_app.stream_topics import import_initiated, import_jobs

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


async def start_import(merchant_id: Any, source: Any, file_url: Any) -> dict[str, Any]:
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    caller = await guard(merchant_id, EDIT, flag=CUSTOMER_IMPORT)
    source = parse_source(source)
    runtime = get_runtime()
    if source == SHOPIFY_API:  # no file: the shop's Admin API (core_app/imports/shopify_source.py)
        from core_app.imports.shopify_source import source_url

        file_url = await source_url(runtime.pool, runtime.settings.shopify_shop_url, merchant_id, file_url)
    parse_file_url(file_url)  # syntax first: no I/O for a malformed request
    if not await merchant_exists(runtime.pool, merchant_id):
        raise NotFound("merchant", merchant_id)
    url = await check_file_url(file_url, runtime.settings)
    import_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    try:
        row = await store.insert_import_log(runtime.pool, import_id, merchant_id, source, url.public)
    except psycopg2.errors.ForeignKeyViolation:
        raise NotFound("merchant", merchant_id) from None
    job = ImportJob(
        import_id=import_id,
        merchant_id=merchant_id,
        source=source,
        file_url=url.url,
        created_at=now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        requested_at_ms=int(time.time() * 1000),
    )
    try:
        initiated = {
            "event_id": str(uuid.uuid4()),
            "import_id": import_id,
            "merchant_id": merchant_id,
            "source": source,
            "created_at": now,
        }
        value = await runtime.codec.encode(topics.IMPORT_INITIATED, initiated)
        await import_initiated.send(key=import_id, value=value)
        await import_jobs.send(key=import_id, value=job.to_json())
    except Exception as exc:
        log.exception("import not handed to the agent", extra={"import_id": import_id})
        reason = f"the import could not be queued: {type(exc).__name__}"
        await store.fail_import_log(runtime.pool, merchant_id, import_id, reason)
        raise Unavailable(reason) from None
    imports_initiated.labels(source).inc()
    product_events.capture("import_initiated", merchant_id, source=source)
    await infra_retry()(
        record_audit,
        runtime.pool,
        merchant_id=merchant_id,
        actor=caller.subject if caller else "unknown",
        action="import.start",
        entity_type="customer_import",
        entity_id=import_id,
        details={"source": source, "file_url": url.public},
        idempotency_key=import_id,
    )
    log.info("import initiated", extra={"import_id": import_id, "merchant_id": merchant_id, "source": source})
    return import_log_view(row)


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


async def list_import_logs(merchant_id: Any, status: Any = None, limit: Any = None) -> list[dict[str, Any]]:
    """The merchant's import logs, newest first (from PostgreSQL: the sink lags the run by < 1 s)."""
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    await guard(merchant_id, VIEW)
    wanted = parse_status(status)
    rows = await store.list_import_logs(get_runtime().pool, merchant_id, wanted, _limit(limit))
    return [import_log_view(row) for row in rows]


async def get_import_log(merchant_id: Any, import_id: Any) -> dict[str, Any]:
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    await guard(merchant_id, VIEW)
    import_id = parse_uuid(import_id, "import_id")
    row = await store.fetch_import_log(get_runtime().pool, merchant_id, import_id)
    if row is None:
        raise NotFound("import", import_id)
    return import_log_view(row)
