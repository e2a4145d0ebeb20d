"""Who may read PII (the decrypted email), and the audit of every such read.

`customers:read_pii` is a scope next to the role hierarchy, never implied by it: a PII read needs
`admin:customers:view` (through `guard`) plus this scope, on JWTs, Roles answers and API keys alike
(docs/decisions.md D132). Every read that returned an email writes one `audit_logs` row per customer
before the answer leaves: concurrent reads share one INSERT (`PiiAuditLog`), so the audit costs a
round trip per batch, not per read, and a read whose audit row could not be written fails rather
than returning the email unaudited.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import aiopg

from core_app.domain.errors import Unavailable
from core_app.security.principal import READ_PII, Principal

log = logging.getLogger(__name__)

PII_READ_ACTION = "customer.pii_read"


def may_read_pii(principal: Principal | None) -> bool:
    return principal is not None and READ_PII in principal.permissions


@dataclass(frozen=True, slots=True)
class PiiRead:
    merchant_id: str
    customer_id: str
    actor: str
    transport: str  # rest | graphql | grpc


_INSERT = """
INSERT INTO audit_logs (merchant_id, actor, action, entity_type, entity_id, details)
SELECT r.merchant_id, r.actor, %s, 'customer', r.customer_id, r.details
  FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::jsonb[]) AS r(merchant_id, actor, customer_id, details)
"""


class PiiAuditLog:
    """Batches concurrent PII reads into one INSERT; `record` returns once its rows are committed."""

    def __init__(self, pool: aiopg.Pool) -> None:
        self.pool = pool
        self._pending: list[PiiRead] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None

    async def record(self, reads: list[PiiRead]) -> None:
        if not reads:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.extend(reads)
        self._waiters.append(waiter)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        await waiter

    async def _drain(self) -> None:
        while self._pending:
            reads, waiters = self._pending, self._waiters
            self._pending, self._waiters = [], []
            try:
                await self._insert(reads)
            except Exception as exc:
                log.error("PII read audit failed", extra={"error": str(exc), "rows": len(reads)})
                failure = Unavailable("the PII read audit could not be written; retry")
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(failure)
                continue
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _insert(self, reads: list[PiiRead]) -> None:
        details = [json.dumps({"transport": r.transport, "fields": ["email"]}) for r in reads]
        params = (
            PII_READ_ACTION,
            [r.merchant_id for r in reads],
            [r.actor for r in reads],
            [r.customer_id for r in reads],
            details,
        )
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(_INSERT, params)
