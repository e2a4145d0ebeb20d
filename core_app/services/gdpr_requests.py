"""Tracking GDPR requests (docs/decisions.md D160): every compliance request is recorded with its
status and its 30-day deadline, its work is attempted and retried, and a request that keeps failing
is reported (status `failed`, counted, logged, and raised so its transport dead-letters the record
for `core dlq replay`), never dropped. Recording is idempotent: a redelivered request finds its row,
and a replay of a failed one completes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from core_app.domain.gdpr import GdprRequest, error_text
from core_app.retry import infra_retry
from core_app.services import gdpr_metrics as metrics
from core_app.services.gdpr_ports import GdprRequestStore

log = logging.getLogger(__name__)

ATTEMPTS = 3  # of work that failed otherwise than transiently (transient failures retry forever)
BACKOFF_SECONDS = 1.0

Work = Callable[[], Awaitable[dict[str, Any]]]
Sleep = Callable[[float], Awaitable[None]]


async def record(store: GdprRequestStore, requests: list[GdprRequest]) -> None:
    """Record requests as received (idempotent: known ones are left as they are)."""
    if not requests:
        return
    fresh = set(await infra_retry()(store.record, requests))
    for request in requests:
        if request.id in fresh:
            metrics.requests_received.labels(request.kind, request.source).inc()


async def finish(store: GdprRequestStore, request: GdprRequest, result: dict[str, Any]) -> None:
    """Mark a request done (idempotent), with its result: ids and counts, never PII."""
    if await infra_retry()(store.finish, request.id, result):
        metrics.requests_done.labels(request.kind).inc()


async def run_tracked(
    store: GdprRequestStore, request: GdprRequest, work: Work, sleep: Sleep = asyncio.sleep
) -> dict[str, Any]:
    """Record `request`, do `work` (ATTEMPTS tries, transient infrastructure errors retried inside
    each), and mark it done with the result. After the last failed try the request is `failed` and
    the error is raised for the caller to dead-letter."""
    await record(store, [request])
    for attempt in range(1, ATTEMPTS + 1):
        try:
            result = await infra_retry()(work)
        except Exception as exc:
            final = attempt == ATTEMPTS
            await infra_retry()(store.failed_attempt, request.id, error_text(exc), final)
            if final:
                metrics.requests_failed.labels(request.kind).inc()
                log.error(
                    "GDPR request failed every attempt; reported",
                    extra={"request_id": request.id, "kind": request.kind, "error": error_text(exc)},
                )
                raise
            metrics.request_retries.labels(request.kind).inc()
            await sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
            continue
        await finish(store, request, result)
        return result
    raise AssertionError("unreachable")  # the loop returns or raises


async def refresh_gauges(store: GdprRequestStore) -> None:
    """The open, overdue and oldest-open gauges, from PostgreSQL (the whole set's requests)."""
    summary = await store.open_summary()
    metrics.requests_open.set(summary.open)
    metrics.requests_overdue.set(summary.overdue)
    metrics.oldest_open_age.set(summary.oldest_age_seconds)
