"""Events for customers that do not exist yet: parked in PostgreSQL, not dead-lettered (D103).

In a saga a producer may score a customer before Core has imported it. Such an event is parked
(`parked_events`) with its raw record; `ParkedEvents` (one per worker) claims due rows with
`FOR UPDATE SKIP LOCKED`, and for each:
- the customer now exists (API, import, webhook: a PostgreSQL row): the record goes back through the
  normal path, to its key's own partition of `core.rekeyed`, and the row is deleted;
- it is past `expires_at` (PARKED_EVENT_TTL_SECONDS, default 7 d): it goes to `core.dlq` as
  `unknown_customer`, with how long it waited, and the row is deleted;
- otherwise it is retried later, with exponential backoff capped at PARKED_RETRY_MAX_SECONDS.
Rows are deleted only after the record's send is acknowledged, in the transaction that claimed them:
a crash re-sends at worst, and the owner skips the copy as not newer. A customer created by the API
or an import wakes its parked events at once (`wake`, core_app/customer_import/store.py).
`core_parked_events` is the number parked, cluster-wide (every worker reports the same count:
aggregate with max, not sum).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiopg
from faust.types import EventT
from mode import Service

from agents.repartition import header_items, send_to_owner
from core_app import metrics
from core_app.domain.events import CustomerEvent
from core_app.retry import FailureStreak
from core_app.services.ports import DeadLetters, FailedRecord
from core_app.settings import Settings

if TYPE_CHECKING:
    from core_app.components import Components

log = logging.getLogger(__name__)

CLAIM_LIMIT = 500
_INSERT = """
INSERT INTO parked_events (merchant_id, customer_id, source_topic, received_on, source_partition,
                           source_offset, record_key, record_value, headers, record_timestamp, expires_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, CURRENT_TIMESTAMP + make_interval(secs => %s))
ON CONFLICT (received_on, source_partition, source_offset) DO NOTHING
"""
_CLAIM = """
SELECT p.id, p.merchant_id::text, p.customer_id::text, p.source_topic, p.received_on, p.source_partition,
       p.source_offset, p.record_key, p.record_value, p.headers, p.record_timestamp, p.attempts,
       p.parked_at::text, p.expires_at <= CURRENT_TIMESTAMP AS expired,
       EXISTS (SELECT 1 FROM customers c WHERE c.merchant_id = p.merchant_id AND c.id = p.customer_id)
  FROM parked_events p
 WHERE p.next_attempt_at <= CURRENT_TIMESTAMP
 ORDER BY p.next_attempt_at
 LIMIT %s
   FOR UPDATE OF p SKIP LOCKED
"""
_BACK_OFF = """
UPDATE parked_events
   SET attempts = attempts + 1,
       next_attempt_at = CURRENT_TIMESTAMP + make_interval(secs => LEAST(%s * power(2, attempts), %s))
 WHERE id = ANY(%s)
"""


def encoded_headers(headers: Any) -> str:
    items = [
        [name, base64.b64encode(value if isinstance(value, bytes) else str(value).encode()).decode()]
        for name, value in header_items(headers)
    ]
    return json.dumps(items)


async def park(
    pool: aiopg.Pool, settings: Settings, items: list[tuple[EventT, CustomerEvent]], origin: str
) -> None:
    """Park events whose customer is unknown; awaited before the batch (and its offsets) completes."""
    rows = [
        (
            event.merchant_id,
            event.customer_id,
            origin,
            raw.message.topic,
            raw.message.partition,
            raw.message.offset,
            raw.message.key if isinstance(raw.message.key, bytes | None) else str(raw.message.key).encode(),
            raw.message.value,
            encoded_headers(raw.headers),
            raw.message.timestamp or None,
            settings.parked_event_ttl_seconds,
        )
        for raw, event in items
    ]
    async with pool.acquire() as conn, conn.cursor() as cur:
        for row in rows:
            await cur.execute(_INSERT, row)
    metrics.events_parked.labels(origin).inc(len(rows))


async def wake(pool: aiopg.Pool, merchant_id: str, customer_id: str) -> None:
    """The customer exists now: its parked events are due at once."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "UPDATE parked_events SET next_attempt_at = CURRENT_TIMESTAMP"
            " WHERE merchant_id = %s AND customer_id = %s",
            (merchant_id, customer_id),
        )


def decoded_headers(row_headers: list[list[str]]) -> list[tuple[str, bytes]]:
    return [(name, base64.b64decode(value)) for name, value in row_headers]


# (key, value, timestamp, headers) -> the ack of its send to the key's own partition of core.rekeyed
SendToOwner = Callable[[str, bytes | None, float | None, list[tuple[str, bytes]]], Awaitable[Awaitable[Any]]]


async def release(
    row: tuple[Any, ...], dead_letters: DeadLetters, send: SendToOwner = send_to_owner
) -> tuple[str, Awaitable[Any] | None]:
    """Send one claimed row on: ("applied", the send's ack), ("expired", None) once dead-lettered,
    or ("waiting", None) while the customer is still unknown."""
    (_id, merchant_id, customer_id, origin, received_on, partition, offset, key, value, headers, ts) = row[
        :11
    ]
    attempts, parked_at, expired, exists = row[11:]
    if exists:
        kept = [(name, data) for name, data in decoded_headers(headers) if name != "source_topic"]
        kept.append(("source_topic", origin.encode()))
        metrics.parked_released.labels(origin, "applied").inc()
        return "applied", await send(f"{merchant_id}:{customer_id}", _bytes(value), ts, kept)
    if not expired:
        return "waiting", None
    reason = f"no customer {merchant_id}:{customer_id} after {attempts} retries since {parked_at}Z"
    record = FailedRecord(_bytes(key), _bytes(value), origin, partition, offset, received_on)
    await dead_letters.dead_letter(record, "unknown_customer", reason)
    metrics.parked_released.labels(origin, "expired").inc()
    return "expired", None


def _bytes(value: Any) -> bytes | None:
    return bytes(value) if value is not None else None


async def retry_due(pool: aiopg.Pool, settings: Settings, dead_letters: DeadLetters) -> int:
    """One pass over the due rows, in one transaction; returns how many left the table."""
    done: list[int] = []
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("BEGIN")
        try:
            await cur.execute(_CLAIM, (CLAIM_LIMIT,))
            waiting, acks = [], []
            for row in await cur.fetchall():
                outcome, ack = await release(row, dead_letters)
                (waiting if outcome == "waiting" else done).append(row[0])
                if ack is not None:
                    acks.append(ack)
            await asyncio.gather(*acks)  # rows go only once their records are in the topic
            if done:
                await cur.execute("DELETE FROM parked_events WHERE id = ANY(%s)", (done,))
            if waiting:
                base, cap = settings.parked_retry_base_seconds, settings.parked_retry_max_seconds
                await cur.execute(_BACK_OFF, (base, cap, waiting))
            await cur.execute("COMMIT")
        except BaseException:
            await cur.execute("ROLLBACK")
            raise
        await cur.execute("SELECT count(*) FROM parked_events")
        metrics.parked_events.set((await cur.fetchone())[0])
    return len(done)


class ParkedEvents(Service):
    """Retries parked events about once a second (each row by its own backoff)."""

    PASS_EVERY = 1.0

    def __init__(self, components: Components, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.components = components
        self.settings = components.settings

    @Service.task
    async def _retry_loop(self) -> None:
        streak = FailureStreak(log, "retrying parked events")  # one traceback per outage, not one a second
        while not self.should_stop:
            try:
                pool, dead_letters = self.components.runtime.pool, self.components.dead_letters
                while await retry_due(pool, self.settings, dead_letters) >= CLAIM_LIMIT:
                    pass  # a full pass: more are due
                streak.succeeded()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                streak.failed(exc)
            await self.sleep(self.PASS_EVERY)
