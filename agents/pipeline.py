"""Shared processing of consumed customer events, a batch at a time.

decode + validate -> divert (dead letter, or forward to the key's own partition) -> first-touch load
-> apply and save -> publish.

The read-apply-save step has no `await` in it: several agents (one per topic) update the same
customers, and asyncio cannot interleave them inside a synchronous section, so no update is lost.
Each batch coalesces: a key's events are applied in order and the table is written once per key.
Table writes and `customer.updated` go through the record writer (tables/changelog.py): appended in
order, sent in batches, flushed before Faust commits the source offsets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiopg
from faust.types import EventT, StreamT
from redis.asyncio import Redis

from agents.dead_letter import dead_letter_event
from agents.gdpr_hooks import GdprHooks
from agents.parking import park
from agents.repartition import customer_shaped, forward, header_items, is_misrouted
from agents.take import take_events
from core_app import metrics, topics, tracing
from core_app import stream_topics as faust_topics
from core_app.batch_delivery import BatchEvent, BatchHandler
from core_app.domain.customer import CustomerState
from core_app.domain.errors import ValidationFailed
from core_app.domain.events import (
    CustomerEvent,
    GdprAccessRequested,
    GdprRedactionRequested,
    apply_event,
    parse_uuid,
)
from core_app.domain.timeline import consumed_source, event_entry
from core_app.events.codec import DecodeError
from core_app.ops import product_events
from core_app.repository import record_audit
from core_app.retry import infra_retry
from core_app.services.ports import Codec, DataKeys, DeadLetters
from core_app.settings import Settings
from tables.changelog import writer_for
from tables.customers import fetch_missing, read_customers, save_customer

if TYPE_CHECKING:
    from core_app.components import Components

log = logging.getLogger(__name__)

# Table writes and customer.updated no longer go through Faust's producer buffer (whose back-pressure
# capped batches at 100, D27), but through the record writer, which the agent waits on instead.
BATCH_MAX = 500
BATCH_WITHIN = 0.02  # seconds a partial batch may wait for more events

Parser = Callable[[dict[str, Any]], CustomerEvent]
CHANGE_KIND = {
    "rfm": "RFM",
    "points": "POINTS",
    "referral": "REFERRAL",
    "gdpr": "GDPR_REDACTION",
    "profile": "PROFILE",
}


@dataclass
class KeyChange:
    state: CustomerState
    events: list[CustomerEvent]


@dataclass
class BatchResult:
    changes: list[KeyChange] = field(default_factory=list)
    unknown: list[tuple[EventT, CustomerEvent]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class PipelineDeps:
    """What processing a batch needs besides the tables, handed in by the agent's edge."""

    codec: Codec
    dead_letters: DeadLetters
    data_keys: DataKeys
    pool: aiopg.Pool
    redis: Redis
    settings: Settings
    gdpr: GdprHooks | None = None  # tracking and exports of gdpr_request.created (D160, D162)

    @classmethod
    def of(cls, components: Components) -> PipelineDeps:
        runtime = components.runtime
        return cls(
            codec=runtime.codec,
            dead_letters=components.dead_letters,
            data_keys=components.security.data_keys,
            pool=runtime.pool,
            redis=runtime.redis,
            settings=runtime.settings,
            gdpr=GdprHooks(components.gdpr, components.dead_letters),
        )

    def redis_key(self, key: str) -> str:
        return f"{self.settings.redis_key_prefix}{key}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def key_route(key: Any, event: CustomerEvent) -> str:
    """'ok', 'rekey' (keyed some other way) or 'merchant_mismatch' (key names another merchant)."""
    if key == event.key:
        return "ok"
    if isinstance(key, str) and key.count(":") == 1:
        key_merchant = key.split(":", 1)[0]
        try:
            if parse_uuid(key_merchant, "key") != event.merchant_id:
                return "merchant_mismatch"
        except ValidationFailed:
            pass
    return "rekey"


async def parse_or_divert(
    deps: PipelineDeps, raw: EventT, topic: str, parser: Parser, forwards: list[Awaitable[Any]]
) -> CustomerEvent | None:
    """The validated event, or None once it has been dead-lettered or forwarded to its key's own
    partition (re-keyed or repartitioned: agents/repartition.py); a forward's ack joins `forwards`.

    A record keyed like a customer but off that key's partition is forwarded before it is decoded:
    the owner decodes and validates it (and re-keys or dead-letters it), so it is decoded once.
    """
    key = customer_shaped(raw.key)
    if key is not None and is_misrouted(raw, key):
        forwards.append(await forward(raw, key, topic))
        return None
    try:
        event = parser(await deps.codec.decode(raw.value))
    except DecodeError as exc:
        await dead_letter_event(deps.dead_letters, raw, exc.kind, exc.reason, topic)
        return None
    except ValidationFailed as exc:
        await dead_letter_event(deps.dead_letters, raw, "invalid", str(exc), topic)
        return None
    route = key_route(raw.key, event)
    if route == "merchant_mismatch":
        reason = f"key {raw.key!r} names another merchant than the event's {event.merchant_id}"
        await dead_letter_event(deps.dead_letters, raw, route, reason, topic)
        return None
    if route == "rekey" or is_misrouted(raw, event.key):
        forwards.append(await forward(raw, event.key, topic, rekeyed=route == "rekey"))
        return None
    return event


ByKey = dict[str, list[tuple[EventT, CustomerEvent]]]


def event_source(raw: EventT, topic: str) -> dict[str, Any]:
    """Where the timeline says an event came from: its producer's topic, partition and offset."""
    message = raw.message
    forwarded = None
    if message.topic != topic:  # read from core.rekeyed: the header names the original record
        for name, value in header_items(raw.headers):
            if name == "forwarded_from":
                forwarded = value.decode() if isinstance(value, bytes) else str(value)
    return consumed_source(topic, message.partition, message.offset, forwarded)


def apply_batch(
    by_key: ByKey, states: dict[str, CustomerState | None], fetched: dict[str, CustomerState], topic: str
) -> BatchResult:
    """Synchronous on purpose (see the module docstring): `states` must be read with no `await` since.
    Each applied event leaves a timeline entry, saved with the state it produced (D170)."""
    result = BatchResult()
    now = now_iso()
    for key, items in by_key.items():
        state = states.get(key) or fetched.get(key)
        if state is None:
            result.unknown.extend(items)
            continue
        applied: list[tuple[EventT, CustomerEvent]] = []
        entries: list[dict[str, Any]] = []
        for raw, event in items:
            outcome = apply_event(state, event, now)
            if outcome.state is None:
                result.skipped[outcome.skipped or "unknown"] += 1
                continue
            made = event_entry(state, outcome.state, event, event_source(raw, topic))
            if made is not None:
                entries.append(made)
            state = outcome.state
            applied.append((raw, event))
        if applied:
            save_customer(state, applied[-1][0], entries)
            result.changes.append(KeyChange(state, [event for _, event in applied]))
    return result


def customer_updated_record(change: KeyChange, updated_at: datetime | None = None) -> dict[str, Any]:
    kinds = sorted({CHANGE_KIND[event.source] for event in change.events})
    return state_record(change.state, kinds, updated_at)


def state_record(
    state: CustomerState, changes: list[str], updated_at: datetime | None = None
) -> dict[str, Any]:
    """A `customer.updated` value: the state after `changes`, without PII."""
    return {
        "event_id": str(uuid.uuid4()),
        "customer_id": state.customer_id,
        "merchant_id": state.merchant_id,
        "rfm_score": state.rfm_score or None,
        "metadata": json.dumps(state.metadata, sort_keys=True),
        "version": state.version,
        "changes": changes,
        "redacted": state.redacted,
        "updated_at": updated_at or datetime.now(UTC),
    }


async def publish(deps: PipelineDeps, result: BatchResult, topic: str) -> None:
    """`customer.updated` per changed key, queued after the key's table write.

    Changes without a redaction come first: the codec's `encode` never suspends, so they are queued
    before any other agent runs. A redaction's event waits for its audit row and cache deletion.
    """
    writer = writer_for(faust_topics.customer_updated.app)
    updated_at = datetime.now(UTC)
    redactions: list[KeyChange] = []
    applied = 0
    for change in result.changes:
        if any(isinstance(event, GdprRedactionRequested) for event in change.events):
            redactions.append(change)
            continue
        value = await deps.codec.encode(topics.CUSTOMER_UPDATED, customer_updated_record(change, updated_at))
        writer.produce(topics.CUSTOMER_UPDATED, change.state.key.encode(), value)
        applied += len(change.events)
    if applied:
        metrics.events_processed.labels(topic).inc(applied)
    if result.unknown:  # the customer may be created later (a saga): parked, not dead-lettered (D103)
        await infra_retry()(park, deps.pool, deps.settings, result.unknown, topic)
    for change in redactions:
        for event in change.events:
            if isinstance(event, GdprRedactionRequested):
                await complete_redaction(deps, event)
        value = await deps.codec.encode(topics.CUSTOMER_UPDATED, customer_updated_record(change))
        writer.produce(topics.CUSTOMER_UPDATED, change.state.key.encode(), value)
        metrics.events_processed.labels(topic).inc(len(change.events))
    for reason, count in result.skipped.items():
        metrics.events_skipped.labels(topic, reason).inc(count)
    if topic == topics.RFM_UPDATED:
        product_events.count_by_merchant("rfm_score_updated", [c.state.merchant_id for c in result.changes])
    await writer.wait_until_ebb()


async def complete_redaction(deps: PipelineDeps, event: GdprRedactionRequested) -> None:
    """What a redaction needs beyond the table: the data key shredded (every sealed copy of the email in
    Kafka, RocksDB and backups becomes unreadable), the audit row, and the Redis cache entry gone."""

    async def shred_data_key() -> bool:
        return await deps.data_keys.shred(event.merchant_id, event.customer_id)

    shredded = await infra_retry()(shred_data_key)
    await infra_retry()(
        record_audit,
        deps.pool,
        merchant_id=event.merchant_id,
        actor=event.requested_by,
        action="gdpr.redact",
        entity_type="customer",
        entity_id=event.customer_id,
        details={"request_id": event.request_id, "event_id": event.event_id, "data_key_shredded": shredded},
        idempotency_key=event.request_id,
    )
    cache_key = deps.redis_key(f"customer:{event.merchant_id}:{event.customer_id}")

    async def drop_cache_entry() -> None:
        await deps.redis.delete(cache_key)

    await infra_retry()(drop_cache_entry)


async def process_batch(deps: PipelineDeps, raw_events: Sequence[EventT], topic: str, parser: Parser) -> None:
    by_key: ByKey = defaultdict(list)
    forwards: list[Awaitable[Any]] = []
    access: list[tuple[EventT, GdprAccessRequested]] = []  # served, not applied (D162)
    for raw in raw_events:
        event = await parse_or_divert(deps, raw, topic, parser, forwards)
        if isinstance(event, GdprAccessRequested):
            access.append((raw, event))
        elif event is not None:
            by_key[event.key].append((raw, event))
    gdpr = deps.gdpr if topic == topics.GDPR_REQUEST_CREATED else None
    if gdpr is not None:
        await gdpr.received([event for _, event in access] + redactions_of(by_key))
    if by_key:
        result = await apply_and_publish(deps, by_key, topic)
        if gdpr is not None:  # applied, or skipped as already erased; parked ones stay open
            parked = {event.key for _, event in result.unknown}
            await gdpr.redacted([e for e in redactions_of(by_key) if e.key not in parked])
    for raw, request in access:
        assert gdpr is not None, "access requests come from gdpr_request.created"
        await gdpr.serve_access(raw, request, topic)
    # The batch (hence its source offsets) ends only once every forward is in its topic.
    await asyncio.gather(*forwards)


def redactions_of(by_key: ByKey) -> list[GdprRedactionRequested]:
    return [
        event for items in by_key.values() for _, event in items if isinstance(event, GdprRedactionRequested)
    ]


async def apply_and_publish(deps: PipelineDeps, by_key: ByKey, topic: str) -> BatchResult:
    last_events = {key: items[-1][0] for key, items in by_key.items()}
    states = read_customers(last_events)
    fetched: dict[str, CustomerState] = {}
    missing = [key for key, state in states.items() if state is None]
    if missing:
        fetched = await fetch_missing(deps.pool, missing)
        states = read_customers(last_events)  # again: other agents may have written meanwhile
    result = apply_batch(by_key, states, fetched, topic)
    await publish(deps, result, topic)
    return result


async def consume(stream: StreamT, topic: str, parser: Parser, components: Components) -> None:
    """The agent loop: batches in, never crashes on one bad batch, never drops it silently."""
    async for batch in take_events(stream, BATCH_MAX, BATCH_WITHIN):
        # One span per batch, continuing or linking the producers' traces (D148); none without tracing.
        with tracing.batch_span(topic, (event.headers for event in batch)):
            await consume_batch(PipelineDeps.of(components), batch, topic, parser)


def batch_handler(topic: str, parser: Parser, components: Callable[[], Components]) -> BatchHandler:
    """The handler of `topic`'s records in batched delivery (core_app/batch_delivery.py, D234): the same
    work per batch as the agent loop below, on batches of a whole fetch."""

    async def handle(batch: list[BatchEvent]) -> None:
        with tracing.batch_span(topic, (event.headers for event in batch)):
            await consume_batch(PipelineDeps.of(components()), batch, topic, parser)  # type: ignore[arg-type]

    return handle


async def consume_batch(deps: PipelineDeps, batch: Sequence[EventT], topic: str, parser: Parser) -> None:
    """One batch; if it fails as a whole, every event of it is dead-lettered with the error."""
    try:
        await process_batch(deps, batch, topic, parser)
    except Exception as exc:
        log.exception("batch failed; dead-lettering it", extra={"topic": topic, "size": len(batch)})
        metrics.events_failed.labels(topic).inc(len(batch))
        for raw in batch:
            await dead_letter_event(deps.dead_letters, raw, "processing_error", repr(exc), topic)
