"""The PostgreSQL sink: tables' changelogs -> batched, version-guarded upserts.

It runs its own aiokafka consumer group (`{SERVICE_NAME}-pg-sink`), inside each worker
(`SINK_IN_WORKER=true`, the default) or as its own process (`core sink`, core_app/sink_process.py),
so Kafka spreads the changelog partitions over the sink instances. Offsets are committed only after PostgreSQL
commits. While PostgreSQL is down the sink retries the same batch with backoff and lag grows; nothing
is lost. A row PostgreSQL refuses for good (a constraint) is dead-lettered with the reason, through
the `DeadLetters` it is given (core_app/dead_lettering.py), and the rest goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiopg
import orjson
import psycopg2
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from mode import Service
from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis

from core_app.dead_lettering import header_items
from core_app.kafka_security import client_options
from core_app.retry import infra_retry
from core_app.services.ports import DeadLetters, FailedRecord
from core_app.settings import Settings
from core_app.sink_sql import SinkSpec
from core_app.sink_timeline import INSERT_ENTRIES, TIMELINE_FIELD, RetentionPurge, entries_of, gather

log = logging.getLogger(__name__)

SINK_METADATA_MAX_AGE_MS = 10_000  # how soon a topic made again under a running sink is seen

sink_lag = Gauge("core_sink_lag", "Changelog records not yet persisted to PostgreSQL", ["table"])
sink_batch_rows = Histogram(
    "core_sink_batch_rows",
    "Rows per sink upsert batch (after coalescing)",
    ["table"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
sink_rows = Counter("core_sink_rows_total", "Rows upserted by the sink", ["table"])
sink_rows_deleted = Counter(
    "core_sink_rows_deleted_total", "Rows deleted by the sink on a changelog tombstone (a purge)", ["table"]
)
sink_rejected = Counter("core_sink_rejected_total", "Rows PostgreSQL refused, dead-lettered", ["table"])
sink_failures = Counter("core_sink_failures_total", "Sink batches that failed and were retried")
cache_invalidation_failures = Counter(
    "core_cache_invalidation_failures_total", "Redis keys the sink could not invalidate"
)

MAX_RECORDS = 2000


class AssignmentLog(ConsumerRebalanceListener):  # type: ignore[misc]
    """Which changelog partitions this sink persists, logged at every rebalance (a sink that holds
    none while its group waits shows here, not only as growing lag)."""

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        log.info("sink partitions revoked: %d", len(list(revoked)))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        log.info("sink partitions assigned: %d", len(list(assigned)))


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


def changelog_record(record: ConsumerRecord) -> FailedRecord:
    return FailedRecord(
        key=record.key,
        value=record.value,
        origin=record.topic,
        partition=record.partition,
        offset=record.offset,
        headers=tuple(header_items(record.headers)),
        timestamp_ms=record.timestamp,
    )


Row = tuple[dict[str, Any], ConsumerRecord]  # a row and the changelog record it came from


def loads(value: bytes) -> Any:
    """orjson (several times faster than json: the sink decodes every changelog record), json for
    what orjson refuses that json reads (integers beyond 64 bits in metadata)."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return json.loads(value)


def dumps(rows: list[dict[str, Any]]) -> str:
    try:
        return orjson.dumps(rows).decode()
    except TypeError:  # integers beyond 64 bits
        return json.dumps(rows)


def coalesce(spec: SinkSpec, records: Iterable[ConsumerRecord]) -> Coalesced:
    """The newest state per row of a batch (highest version) with every record's timeline entries
    (D170), the rows whose last record is a tombstone (a purged merchant's entries, D163: deleted
    from PostgreSQL), and the records that are neither. A state after a tombstone of its row wins
    over it (the key was written again)."""
    newest: dict[tuple[Any, ...], tuple[dict[str, Any], ConsumerRecord, bool]] = {}
    history: dict[tuple[Any, ...], list[dict[str, Any]]] = {}  # every record's timeline entries
    undecodable: list[ConsumerRecord] = []
    for record in records:
        if record.value is None:
            row = spec.tombstone_row(record.key)
            if row is None:
                undecodable.append(record)
            else:
                newest[spec.key_of(row)] = (row, record, True)
            continue
        try:
            row = loads(record.value)
            version = row.get("version", 0)
        except (ValueError, AttributeError):
            undecodable.append(record)
            continue
        key = spec.key_of(row)
        gather(history, key, row)
        held = newest.get(key)
        if held is None or held[2] or version >= held[0].get("version", 0):
            newest[key] = (row, record, False)
    for key, entries in history.items():
        row, _, deleted = newest[key]
        if not deleted:
            row[TIMELINE_FIELD] = entries
    rows = [(row, record) for row, record, deleted in newest.values() if not deleted]
    deletes = [(row, record) for row, record, deleted in newest.values() if deleted]
    return Coalesced(rows, deletes, undecodable)


@dataclass(frozen=True)
class Coalesced:
    rows: list[Row]  # upserted
    deletes: list[Row]  # deleted (tombstones)
    undecodable: list[ConsumerRecord]


@dataclass
class SinkResources:
    """What the sink needs besides Kafka; in a worker they come from the worker's runtime."""

    pool: aiopg.Pool
    redis: Redis
    redis_key_prefix: str

    def redis_key(self, key: str) -> str:
        return f"{self.redis_key_prefix}{key}"


class PostgresSink(Service):
    def __init__(
        self,
        settings: Settings,
        specs: Iterable[SinkSpec],
        *,
        resources: Callable[[], SinkResources],
        dead_letters: DeadLetters,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.specs = {changelog_topic(settings.service_name, spec.table): spec for spec in specs}
        self.consumer: AIOKafkaConsumer | None = None
        # A callable: in a worker the runtime opens after this service is built.
        self._resources = resources
        self.dead_letters = dead_letters
        self.retention = RetentionPurge(settings.timeline_retention_days)

    @property
    def resources(self) -> SinkResources:
        return self._resources()

    async def on_start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            group_id=f"{self.settings.service_name}-pg-sink",
            client_id=f"{self.settings.worker_id}-pg-sink",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=int(self.settings.kafka_session_timeout * 1000),
            rebalance_timeout_ms=int(self.settings.kafka_rebalance_timeout * 1000),
            heartbeat_interval_ms=int(self.settings.kafka_heartbeat_interval * 1000),
            max_poll_interval_ms=3_600_000,  # a long PostgreSQL outage must not evict the sink
            # As the worker's Faust consumer: a group join on Tansu can outlast aiokafka's 40 s
            # default, and a timed-out join starts over.
            request_timeout_ms=int(self.settings.kafka_request_timeout * 1000),
            # A changelog the broker lost is made again by a worker (D208); the sink, which never
            # makes one, learns of it at its next metadata refresh: 10 s, not aiokafka's 5 min.
            metadata_max_age_ms=SINK_METADATA_MAX_AGE_MS,
        )
        self.consumer.subscribe(list(self.specs), listener=AssignmentLog())
        await self.consumer.start()
        self.add_future(self._run())

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()

    async def _run(self) -> None:
        assert self.consumer is not None
        failures = 0
        while not self.should_stop:
            try:
                await self._step()
                failures = 0
            except Exception:
                # Never die quietly: report, go back to the last committed offsets and try again.
                failures += 1
                sink_failures.inc()
                log.exception("sink batch failed; retrying from the committed offsets")
                await asyncio.sleep(min(30.0, 0.5 * 2**failures))
                await self.consumer.seek_to_committed()

    async def _step(self) -> None:
        assert self.consumer is not None
        batches = await self.consumer.getmany(timeout_ms=500, max_records=MAX_RECORDS)
        await self.retention.maybe_run(lambda: self.resources.pool)  # hourly, between batches (D171)
        if batches:
            await self.persist(batches)
            try:
                await self.consumer.commit()
            except (CommitFailedError, KafkaError) as exc:
                # Rebalanced meanwhile: the new owner re-reads and re-applies (idempotent).
                log.warning("sink commit failed; records will be re-applied", extra={"error": str(exc)})
        await self._report_lag()

    async def persist(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        by_spec: dict[str, list[ConsumerRecord]] = {}
        for tp, records in batches.items():
            by_spec.setdefault(tp.topic, []).extend(records)
        for topic, records in by_spec.items():
            spec = self.specs[topic]
            batch = coalesce(spec, records)
            for record in batch.undecodable:
                reason = "changelog value is not a JSON object, nor a tombstone of a table key"
                await self._dead_letter(record, "sink_undecodable", reason)
            if batch.rows:
                await self._upsert_or_isolate(spec, batch.rows)
                sink_batch_rows.labels(spec.table).observe(len(batch.rows))
                sink_rows.labels(spec.table).inc(len(batch.rows))
            if batch.deletes:
                await infra_retry()(self._write, spec.delete_sql, [row for row, _ in batch.deletes])
                sink_rows_deleted.labels(spec.table).inc(len(batch.deletes))
            await self._invalidate_cache(spec, [row for row, _ in batch.rows + batch.deletes])

    async def _upsert_or_isolate(self, spec: SinkSpec, rows: list[Row]) -> None:
        try:
            await infra_retry()(self._upsert, spec, [row for row, _ in rows])
        except (psycopg2.DataError, psycopg2.IntegrityError):
            # One bad row must not hold back the others: retry them one by one.
            for row, record in rows:
                try:
                    await infra_retry()(self._upsert, spec, [row])
                except (psycopg2.DataError, psycopg2.IntegrityError) as exc:
                    reason = str(exc).strip().splitlines()[0][:500]
                    await self._dead_letter(record, "sink_rejected", reason)
                    sink_rejected.labels(spec.table).inc()
                    log.error("sink rejected a row", extra={"table": spec.table, "reason": reason})

    async def _upsert(self, spec: SinkSpec, rows: list[dict[str, Any]]) -> None:
        # The timeline entries of these rows are stored with them, in one transaction (D170).
        await self._write(spec.sql, rows, entries_of(rows))

    async def _write(
        self, sql: str, rows: list[dict[str, Any]], history: list[dict[str, Any]] | None = None
    ) -> None:
        async with self.resources.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("BEGIN")
            try:
                await cur.execute(sql, (dumps(rows),))
                if history:
                    await cur.execute(INSERT_ENTRIES, (dumps(history),))
                await cur.execute("COMMIT")
            except BaseException:
                if not conn.closed:
                    await cur.execute("ROLLBACK")
                raise

    async def _dead_letter(self, record: ConsumerRecord, kind: str, reason: str) -> None:
        await self.dead_letters.dead_letter(changelog_record(record), kind, reason)

    async def _invalidate_cache(self, spec: SinkSpec, rows: list[dict[str, Any]]) -> None:
        resources = self.resources
        keys = {resources.redis_key(key) for row in rows if (key := spec.cache_key(row))}
        if not keys:
            return

        async def delete() -> None:
            try:
                await resources.redis.delete(*keys)
            except Exception as exc:
                cache_invalidation_failures.inc(len(keys))
                log.warning("cache invalidation failed", extra={"keys": len(keys), "error": str(exc)})
                raise

        # Until Redis answers, nothing is committed (D113): the changelog from the committed offset is
        # the invalidation log, re-read by whichever sink instance takes the partition.
        await infra_retry()(delete)

    async def _report_lag(self) -> None:
        assert self.consumer is not None
        lag: dict[str, int] = {spec.table: 0 for spec in self.specs.values()}
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            position = await self.consumer.position(tp)
            lag[self.specs[tp.topic].table] += max(0, highwater - position)
        for table, value in lag.items():
            sink_lag.labels(table).set(value)
