"""The PostgreSQL sink: tables' changelogs -> batched, version-guarded upserts.

It runs its own aiokafka consumer group (`{SERVICE_NAME}-pg-sink`) inside each worker, so Kafka spreads
the changelog partitions over the workers. Offsets are committed only after PostgreSQL commits. While
PostgreSQL is down the sink retries the same batch with backoff and lag grows; nothing is lost. A row
PostgreSQL refuses for good (a constraint) is dead-lettered with the reason and the rest goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from typing import Any

import psycopg2
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from mode import Service
from prometheus_client import Counter, Gauge, Histogram

from core_app.retry import infra_retry
from core_app.runtime import get_runtime
from core_app.settings import Settings
from core_app.sink_sql import SinkSpec

log = logging.getLogger(__name__)

sink_lag = Gauge("core_sink_lag", "Changelog records not yet persisted to PostgreSQL", ["table"])
sink_batch_rows = Histogram(
    "core_sink_batch_rows",
    "Rows per sink upsert batch (after coalescing)",
    ["table"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
sink_rows = Counter("core_sink_rows_total", "Rows upserted by the sink", ["table"])
sink_rejected = Counter("core_sink_rejected_total", "Rows PostgreSQL refused, dead-lettered", ["table"])
sink_failures = Counter("core_sink_failures_total", "Sink batches that failed and were retried")
cache_invalidation_failures = Counter(
    "core_cache_invalidation_failures_total", "Redis keys the sink could not invalidate"
)

MAX_RECORDS = 2000


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


Row = tuple[dict[str, Any], ConsumerRecord]  # a row and the changelog record it came from


def coalesce(spec: SinkSpec, records: Iterable[ConsumerRecord]) -> tuple[list[Row], list[ConsumerRecord]]:
    """The newest state per row of a batch (highest version), and the records that are not rows.

    Tombstones (deleted keys) are skipped: Core redacts customers, it never deletes them.
    """
    newest: dict[tuple[Any, ...], Row] = {}
    undecodable: list[ConsumerRecord] = []
    for record in records:
        if record.value is None:
            continue
        try:
            row = json.loads(record.value)
            version = row.get("version", 0)
        except (ValueError, AttributeError):
            undecodable.append(record)
            continue
        key = spec.key_of(row)
        if key not in newest or version >= newest[key][0].get("version", 0):
            newest[key] = (row, record)
    return list(newest.values()), undecodable


class PostgresSink(Service):
    def __init__(self, settings: Settings, specs: Iterable[SinkSpec], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.specs = {changelog_topic(settings.service_name, spec.table): spec for spec in specs}
        self.consumer: AIOKafkaConsumer | None = None

    async def on_start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            *self.specs,
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=f"{self.settings.service_name}-pg-sink",
            client_id=f"{self.settings.worker_id}-pg-sink",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=int(self.settings.kafka_session_timeout * 1000),
            rebalance_timeout_ms=int(self.settings.kafka_rebalance_timeout * 1000),
            heartbeat_interval_ms=int(self.settings.kafka_heartbeat_interval * 1000),
            max_poll_interval_ms=3_600_000,  # a long PostgreSQL outage must not evict the sink
        )
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
            rows, undecodable = coalesce(spec, records)
            for record in undecodable:
                await self._dead_letter(record, "sink_undecodable", "changelog value is not a JSON object")
            if not rows:
                continue
            await self._upsert_or_isolate(spec, rows)
            sink_batch_rows.labels(spec.table).observe(len(rows))
            sink_rows.labels(spec.table).inc(len(rows))
            await self._invalidate_cache(spec, [row for row, _ in rows])

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
        async with get_runtime().pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("BEGIN")
            try:
                await cur.execute(spec.sql, (json.dumps(rows),))
                await cur.execute("COMMIT")
            except BaseException:
                if not conn.closed:
                    await cur.execute("ROLLBACK")
                raise

    async def _dead_letter(self, record: ConsumerRecord, kind: str, reason: str) -> None:
        from agents.dead_letter import dead_letter  # agents import the app; keep the sink importable alone

        await dead_letter(
            key=record.key,
            value=record.value,
            origin=record.topic,
            partition=record.partition,
            offset=record.offset,
            kind=kind,
            reason=reason,
        )

    async def _invalidate_cache(self, spec: SinkSpec, rows: list[dict[str, Any]]) -> None:
        runtime = get_runtime()
        keys = {runtime.redis_key(key) for row in rows if (key := spec.cache_key(row))}
        if not keys:
            return
        try:
            await runtime.redis.delete(*keys)
        except Exception as exc:
            cache_invalidation_failures.inc(len(keys))
            log.error("cache invalidation failed", extra={"keys": len(keys), "error": str(exc)})

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
