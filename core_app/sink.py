"""The PostgreSQL sink: tables' changelogs -> batched, version-guarded upserts.

It runs its own aiokafka consumer group (`{SERVICE_NAME}-pg-sink`), inside each worker
(`SINK_IN_WORKER=true`, the default) or as its own process (`core sink`, see `run_sink`), so Kafka
spreads the changelog partitions over the sink instances. Offsets are committed only after PostgreSQL
commits. While PostgreSQL is down the sink retries the same batch with backoff and lag grows; nothing
is lost. A row PostgreSQL refuses for good (a constraint) is dead-lettered with the reason and the rest
goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiopg
import psycopg2
from aiohttp import web
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, KafkaError
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from redis.asyncio import Redis

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


class AssignmentLog(ConsumerRebalanceListener):  # type: ignore[misc]
    """Which changelog partitions this sink persists, logged at every rebalance (a sink that holds
    none while its group waits shows here, not only as growing lag)."""

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        log.info("sink partitions revoked: %d", len(list(revoked)))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        log.info("sink partitions assigned: %d", len(list(assigned)))


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


DeadLetter = Callable[..., Awaitable[None]]  # agents.dead_letter.dead_letter's keyword signature


@dataclass
class SinkResources:
    """What the sink needs besides Kafka; in a worker they come from the worker's runtime."""

    pool: aiopg.Pool
    redis: Redis
    redis_key_prefix: str

    def redis_key(self, key: str) -> str:
        return f"{self.redis_key_prefix}{key}"


async def _worker_dead_letter(**kwargs: Any) -> None:
    from agents.dead_letter import dead_letter  # agents import the app; keep the sink importable alone

    await dead_letter(**kwargs)


class PostgresSink(Service):
    def __init__(
        self,
        settings: Settings,
        specs: Iterable[SinkSpec],
        *,
        resources: SinkResources | None = None,
        dead_letter: DeadLetter | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.specs = {changelog_topic(settings.service_name, spec.table): spec for spec in specs}
        self.consumer: AIOKafkaConsumer | None = None
        # None: the worker's runtime (opened after this service is built) and its Faust producer.
        self._resources = resources
        self._dead_letter_fn = dead_letter or _worker_dead_letter

    @property
    def resources(self) -> SinkResources:
        if self._resources is not None:
            return self._resources
        runtime = get_runtime()
        return SinkResources(runtime.pool, runtime.redis, runtime.settings.redis_key_prefix)

    async def on_start(self) -> None:
        self.consumer = AIOKafkaConsumer(
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
            # As the worker's Faust consumer: a group join on Tansu can outlast aiokafka's 40 s
            # default, and a timed-out join starts over.
            request_timeout_ms=int(self.settings.kafka_request_timeout * 1000),
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
        async with self.resources.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("BEGIN")
            try:
                await cur.execute(spec.sql, (json.dumps(rows),))
                await cur.execute("COMMIT")
            except BaseException:
                if not conn.closed:
                    await cur.execute("ROLLBACK")
                raise

    async def _dead_letter(self, record: ConsumerRecord, kind: str, reason: str) -> None:
        await self._dead_letter_fn(
            key=record.key,
            value=record.value,
            origin=record.topic,
            partition=record.partition,
            offset=record.offset,
            kind=kind,
            reason=reason,
            headers=record.headers,
            timestamp_ms=record.timestamp,
        )

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


# --- `core sink`: the sink as its own process --------------------------------------------------------


class KafkaDeadLetters:
    """Dead letters from a process without a Faust app: the same topic and headers, sent and awaited."""

    def __init__(self, settings: Settings) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            client_id=f"{settings.worker_id}-pg-sink",
            acks="all",
        )

    async def __call__(
        self,
        *,
        key: bytes | str | None,
        value: bytes | None,
        origin: str,
        partition: int,
        offset: int,
        kind: str,
        reason: str,
        received_on: str | None = None,
        headers: Any = None,
        timestamp_ms: int | None = None,
    ) -> None:
        from agents.dead_letter import dead_letter_headers, dead_lettered
        from core_app.topics import DEAD_LETTER

        all_headers = dead_letter_headers(
            origin, partition, offset, kind, reason, received_on, headers=headers, timestamp_ms=timestamp_ms
        )
        raw_key = key.encode() if isinstance(key, str) else key
        # Awaited: the changelog offset is committed after this returns, so the record is not lost.
        await self.producer.send_and_wait(DEAD_LETTER, key=raw_key, value=value, headers=all_headers)
        dead_lettered(origin, partition, offset, kind, reason)


def sink_web_app(resources: SinkResources, settings: Settings) -> web.Application:
    """`/metrics` (sink lag, batch sizes, rows) and `/health` (PostgreSQL and Redis answer)."""

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_request: web.Request) -> web.Response:
        down: dict[str, str] = {}

        async def pg() -> None:
            async with resources.pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute("SELECT 1")

        for name, probe in (("postgres", pg), ("redis", resources.redis.ping)):
            try:
                await asyncio.wait_for(probe(), settings.health_timeout)
            except Exception as exc:
                down[name] = repr(exc)
        if down:
            return web.json_response({"status": "DOWN", "down": sorted(down), "checks": down}, status=503)
        return web.json_response({"status": "UP"})

    web_app = web.Application()
    web_app.router.add_get("/metrics", metrics)
    web_app.router.add_get("/health", health)
    return web_app


async def serve_sink(settings: Settings, stop: asyncio.Event) -> None:
    """Run the sink until `stop` is set, serving `/metrics` and `/health` on HTTP_PORT."""
    from core_app import db
    from core_app.sink_sql import SPECS

    resources = SinkResources(
        # minsize=0: the sink starts (and waits, retrying) while PostgreSQL is away.
        pool=await db.create_pool(settings, minsize=0),
        redis=Redis.from_url(
            settings.redis_dsn,
            socket_timeout=settings.health_timeout,
            socket_connect_timeout=settings.health_timeout,
        ),
        redis_key_prefix=settings.redis_key_prefix,
    )
    dead_letters = KafkaDeadLetters(settings)
    runner = web.AppRunner(sink_web_app(resources, settings), access_log=None, handle_signals=False)
    sink = PostgresSink(settings, SPECS, resources=resources, dead_letter=dead_letters)
    try:
        await dead_letters.producer.start()
        await runner.setup()
        await web.TCPSite(runner, settings.http_host, settings.http_port).start()
        if not await wait_for_changelogs(settings, list(sink.specs), stop):
            return
        await sink.start()
        log.info("sink running", extra={"http_port": settings.http_port})
        await stop.wait()
    finally:
        await sink.stop()
        await runner.cleanup()
        await dead_letters.producer.stop()
        await resources.redis.aclose()
        resources.pool.close()
        await resources.pool.wait_closed()


async def wait_for_changelogs(settings: Settings, topics: list[str], stop: asyncio.Event) -> bool:
    """Wait until the workers have created the changelog topics (Faust creates them compacted; the
    sink must not create them with other settings). False if stopped first."""
    from aiokafka.admin import AIOKafkaAdminClient

    logged = False
    while not stop.is_set():
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        try:
            await admin.start()
            missing = set(topics) - set(await admin.list_topics())
        except KafkaError as exc:
            missing = {f"(broker: {exc!r})"}
        finally:
            await admin.close()
        if not missing:
            return True
        if not logged:
            log.info("waiting for the workers to create the changelogs", extra={"missing": sorted(missing)})
            logged = True
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except TimeoutError:
            pass
    return False


def run_sink(settings: Settings) -> None:
    """`core sink`: the PostgreSQL sink alone (run the workers with SINK_IN_WORKER=false)."""
    from core_app.gc_tuning import tune_gc
    from core_app.logs import configure_logging

    configure_logging(settings)
    tune_gc(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await serve_sink(settings, stop)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    asyncio.run(main())
