"""One import run: stream the file, validate rows, write batches, publish progress.

Rows go to PostgreSQL in batches (IMPORT_BATCH_SIZE, 500): one query finds the merchant's existing
customers among the batch's email hashes, one statement inserts the new ones (the database encrypts
and hashes their emails). New customers get a deterministic id, uuid5(import_id, email_hash), so a
re-run of the same import recognises the customers it created and announces them again with the
same event id instead of treating them as updates. Existing customers are changed by the worker
that owns them (a command per partition on core.import.commands), because the `customers` table is
the read path's first source and must not go stale (docs/decisions.md D51). Their confirmations
come back on a Redis channel; the import completes once every row is accounted for.

Transient failures (download, database, broker) are retried IMPORT_RETRY_ATTEMPTS times (5) with
exponential backoff and full jitter; then the import fails with the reason. A download that breaks
midway is retried from the start of the file, skipping the rows already handled.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import aiopg
import psycopg2
from aiokafka.errors import KafkaError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from core_app.domain.customer import customer_key
from core_app.domain.email import email_hash
from core_app.domain.imports import (
    SHOPIFY_API,
    Deduper,
    ErrorLog,
    FileReader,
    ImportedRow,
    ImportFileError,
    ImportProgress,
    RowError,
    advance_log,
    imported_metadata,
)
from core_app.imports import metrics, store
from core_app.imports.fetch import Download, FetchError, open_file
from core_app.retry import TRANSIENT_ERRORS
from core_app.routing import key_partition
from core_app.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_RUNS = 10  # a job interrupted (restart, rebalance) this often fails rather than loop on a crash
UPDATE_COMMAND_MAX = 100  # customers per owner command: Faust's producer buffer holds ~100 changelog records


@dataclass(frozen=True)
class ImportJob:
    """What the import agent receives on core.import.jobs (JSON, keyed by import_id)."""

    import_id: str
    merchant_id: str
    source: str
    file_url: str
    created_at: str  # ISO-8601 UTC, ms
    requested_at_ms: int

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> ImportJob:
        data = json.loads(raw)
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ImportJob:
        return cls(
            import_id=state["import_id"],
            merchant_id=state["merchant_id"],
            source=state["source"],
            file_url=state.get("fetch_url") or state["file_url"],
            created_at=state["created_at"],
            requested_at_ms=int(state.get("requested_at_ms") or 0),
        )


class ImportFailed(Exception):
    """The import ends `failed` with this reason."""


class JobIO(Protocol):
    """What a run needs from the worker (Faust table and topics, Redis, PostgreSQL)."""

    settings: Settings
    pool: aiopg.Pool
    partitions: int

    def save_log(self, state: dict[str, Any]) -> None: ...

    async def publish_progress(self, message: dict[str, Any]) -> None: ...

    async def publish_created(self, records: list[dict[str, Any]]) -> None: ...

    async def send_update(self, partition: int, command: dict[str, Any]) -> None: ...

    async def import_enabled(self, merchant_id: str) -> bool: ...

    def replies(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]: ...

    def reply_channel(self, import_id: str) -> str: ...


@dataclass
class _Pending:
    row: ImportedRow
    email_hash: str


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ImportRun:
    def __init__(self, job: ImportJob, state: dict[str, Any], io: JobIO) -> None:
        self.job = job
        self.state = state
        self.io = io
        self.settings = io.settings
        self.progress = ImportProgress(
            job.import_id, job.merchant_id, job.source, errors=ErrorLog(self.settings.import_error_log_max)
        )
        self.hash_key = self.settings.email_hash_key.get_secret_value()
        self.namespace = uuid.UUID(job.import_id)
        self.dedupe = Deduper()
        self.rows_done = 0  # highest record number handled, so a retried download skips them
        self.pending: list[_Pending] = []
        self.inflight: set[asyncio.Task[None]] = set()
        # Batches in flight (parse the next while others are written and announced), and at most two
        # in PostgreSQL at once: the database stays busy while a batch's events go out.
        self.batch_slots = asyncio.Semaphore(3)
        self.db_slots = asyncio.Semaphore(2)
        self.failure: BaseException | None = None
        self.awaiting: dict[str, list[int]] = {}  # owner command id -> rows it carries
        self.all_confirmed = asyncio.Event()
        self.all_confirmed.set()
        self.commands_sent = 0
        self.seconds: dict[str, float] = defaultdict(float)  # time spent per stage, for the log
        self._sending: asyncio.Task[None] | None = None  # the ticker's progress message in flight

    # -- the run ----------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Run to the end; returns the final log state. Cancellation leaves the job resumable."""
        started = time.monotonic()
        runs = int(self.state.get("runs", 0)) + 1
        self.state = {**self.state, "runs": runs, "requested_at_ms": self.job.requested_at_ms}
        self.progress.status = "processing"
        self._save()
        await self._publish()
        ticker = asyncio.create_task(self._tick())
        status, reason = "completed", None
        try:
            async with self.io.replies(self.io.reply_channel(self.job.import_id)) as replies:
                listener = asyncio.create_task(self._listen(replies))
                try:
                    if runs > MAX_RUNS:
                        raise ImportFailed(f"the import was interrupted {runs - 1} times; start it again")
                    if not await self.io.import_enabled(self.job.merchant_id):
                        raise ImportFailed("customer imports are disabled for this merchant")
                    await self._download_with_retries()
                    await self._drain()
                    await self._await_confirmations()
                finally:
                    listener.cancel()
        except ImportFailed as exc:
            await self._abandon()
            status, reason = "failed", str(exc)
        except asyncio.CancelledError:
            await self._abandon()
            raise
        except Exception as exc:
            log.exception("import run failed", extra={"import_id": self.job.import_id})
            await self._abandon()
            status, reason = "failed", f"internal error: {type(exc).__name__}"
        finally:
            await self._stop_ticker(ticker)
        # Only now: no ticker message can follow the final one.
        self.progress.status, self.progress.failure_reason = status, reason
        self.progress.total = self.progress.processed
        self._save()
        await self._publish()
        metrics.imports_finished.labels(self.job.source, self.progress.status).inc()
        metrics.import_duration.labels(self.job.source, self.progress.status).observe(
            time.monotonic() - started
        )
        stages = {stage: round(value, 2) for stage, value in self.seconds.items()}
        log.info(
            "import %s ended %s after %.1fs (stage seconds %s)",
            self.job.import_id,
            self.progress.status,
            time.monotonic() - started,
            stages,
            extra={
                "import_id": self.job.import_id,
                "status": self.progress.status,
                "processed": self.progress.processed,
                "succeeded": self.progress.succeeded,
                "failed": self.progress.failed,
                "seconds": round(time.monotonic() - started, 2),
                "reason": self.progress.failure_reason,
                "stage_seconds": stages,
            },
        )
        return self.state

    def _save(self) -> None:
        self.state = advance_log(self.state, self.progress)
        self.io.save_log(self.state)

    async def _publish(self) -> None:
        try:
            await self.io.publish_progress(self.progress.message())
        except Exception as exc:  # progress is best effort; the log row is the record
            log.warning("progress not published", extra={"import_id": self.job.import_id, "error": str(exc)})

    async def _tick(self) -> None:
        """Progress at a fixed rate: a slow send or a busy loop delays one message, not the schedule."""
        loop = asyncio.get_running_loop()
        interval = self.settings.import_progress_interval
        due = loop.time()
        while True:
            due += interval
            await asyncio.sleep(max(0.0, due - loop.time()))
            due = max(due, loop.time() - interval)  # after a long stall, do not burst to catch up
            if self._sending is None or self._sending.done():
                self._sending = asyncio.create_task(self._publish())

    async def _stop_ticker(self, ticker: asyncio.Task[None]) -> None:
        """Stop the ticker and let its last message out first: the final message must come last."""
        ticker.cancel()
        if self._sending is not None and not self._sending.done():
            await asyncio.wait({self._sending}, timeout=5)

    # -- retries ----------------------------------------------------------------------------------

    def _retrying(self, retry_on: Callable[[BaseException], bool], stage: str) -> AsyncRetrying:
        def count(_state: RetryCallState) -> None:
            metrics.import_retries.labels(stage).inc()

        return AsyncRetrying(
            stop=stop_after_attempt(self.settings.import_retry_attempts),
            wait=wait_random_exponential(
                multiplier=self.settings.import_retry_base_seconds, max=self.settings.import_retry_max_seconds
            ),
            retry=retry_if_exception(retry_on),
            before_sleep=count,
            reraise=True,
        )

    async def _with_retries(self, stage: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call` retried on transient database or broker errors; then ImportFailed with the reason."""
        retrying = self._retrying(lambda exc: isinstance(exc, (*TRANSIENT_ERRORS, KafkaError)), stage)

        async def attempt() -> T:  # tenacity awaits only coroutine functions
            return await call()

        try:
            return await retrying(attempt)
        except (*TRANSIENT_ERRORS, KafkaError) as exc:
            tries = retrying.statistics.get("attempt_number", 1)
            raise ImportFailed(f"{stage} unavailable after {tries} tries: {_reason(exc)}") from None
        except psycopg2.Error as exc:
            raise ImportFailed(f"{stage} refused a batch: {_reason(exc)}") from None

    async def _download_with_retries(self) -> None:
        retrying = self._retrying(lambda exc: isinstance(exc, FetchError) and exc.transient, "download")
        try:
            await retrying(self._read_once)
        except FetchError as exc:
            if not exc.transient:
                raise ImportFailed(f"download failed: {exc.reason}") from None
            tries = retrying.statistics.get("attempt_number", 1)
            raise ImportFailed(f"download failed after {tries} tries: {exc.reason}") from None
        except ImportFileError as exc:
            raise ImportFailed(f"the file cannot be imported: {exc}") from None

    # -- reading ----------------------------------------------------------------------------------

    async def _read_once(self) -> None:
        skip_until = self.rows_done
        try:
            async with self._open() as download:
                self.progress.bytes_total = download.size
                reader = FileReader(self.job.source)
                decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
                seen = 0
                async for chunk in download.chunks:
                    seen += len(chunk)
                    self.progress.bytes_read = max(self.progress.bytes_read, seen)
                    began = time.perf_counter()
                    parsed = reader.feed(decoder.decode(chunk))
                    self.seconds["parse"] += time.perf_counter() - began
                    await self._take(parsed, skip_until)
                await self._take(reader.feed(decoder.decode(b"", final=True)) + reader.finish(), skip_until)
        finally:
            # Rows read before a broken download are good: write them before any retry.
            await self._flush()

    def _open(self) -> AbstractAsyncContextManager[Download]:
        if self.job.source == SHOPIFY_API:  # pulled from the Admin API, not downloaded
            from core_app.imports.shopify_source import open_shopify

            return open_shopify(self.job, self.settings)
        return open_file(self.job.file_url, self.settings)

    async def _take(self, parsed: list[tuple[int, ImportedRow | RowError]], skip_until: int) -> None:
        taken = 0
        for row, outcome in parsed:
            if row <= skip_until:
                continue
            self.rows_done = row
            self.progress.processed += 1
            taken += 1
            if isinstance(outcome, RowError):
                self._row_error(outcome)
                continue
            began = time.perf_counter()
            digest = email_hash(outcome.email, self.hash_key)
            self.seconds["hash"] += time.perf_counter() - began
            duplicate = self.dedupe.check(row, digest)
            if duplicate is not None:
                self._row_error(duplicate)
                continue
            self.pending.append(_Pending(outcome, digest))
            if len(self.pending) >= self.settings.import_batch_size:
                await self._flush()
        metrics.import_rows_processed.labels(self.job.source).inc(taken)

    def _row_error(self, error: RowError) -> None:
        self.progress.errors.add(error)
        metrics.import_rows_failed.labels(self.job.source).inc()

    # -- writing ----------------------------------------------------------------------------------

    async def _flush(self) -> None:
        self._raise_batch_failure()
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        await self.batch_slots.acquire()
        task = asyncio.create_task(self._write_batch(batch))
        self.inflight.add(task)
        task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self.inflight.discard(task)
        self.batch_slots.release()
        if not task.cancelled() and task.exception() is not None and self.failure is None:
            self.failure = task.exception()

    def _raise_batch_failure(self) -> None:
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure

    async def _drain(self) -> None:
        if self.pending:
            await self._flush()
        if self.inflight:
            await asyncio.wait(set(self.inflight))
        self._raise_batch_failure()

    async def _abandon(self) -> None:
        self.pending = []
        for task in list(self.inflight):
            task.cancel()
        if self.inflight:
            await asyncio.wait(set(self.inflight))
        self.failure = None

    def _new_id(self, digest: str) -> str:
        return str(uuid.uuid5(self.namespace, digest))

    def _fields(self, row: ImportedRow) -> dict[str, Any]:
        return {**row.fields, "import_id": self.job.import_id, "imported_at": self.job.created_at}

    async def _write_batch(self, batch: list[_Pending]) -> None:
        async with self.db_slots:
            began = time.perf_counter()
            existing, inserted = await self._store_batch(batch)
            self.seconds["database"] += time.perf_counter() - began
        created: list[tuple[_Pending, str]] = []
        updates: list[tuple[_Pending, str]] = []
        for item in batch:
            if item.email_hash in inserted:
                created.append((item, inserted[item.email_hash]))
            elif item.email_hash in existing:
                customer_id = existing[item.email_hash]
                if customer_id == self._new_id(item.email_hash):
                    created.append((item, customer_id))  # created by an earlier run of this import
                else:
                    updates.append((item, customer_id))
            else:
                self._row_error(
                    RowError(item.row.row, "conflicts with an existing customer id; run the import again")
                )
        began = time.perf_counter()
        await self._announce(created)
        self.seconds["announce"] += time.perf_counter() - began
        await self._send_updates(updates)
        self.progress.created += len(created)
        metrics.import_customers.labels(self.job.source, "created").inc(len(created))
        self._save()

    async def _store_batch(self, batch: list[_Pending]) -> tuple[dict[str, str], dict[str, str]]:
        """(existing customers, customers inserted now), each email_hash -> customer_id."""
        pool, merchant_id = self.io.pool, self.job.merchant_id
        hashes = [item.email_hash for item in batch]
        existing = await self._with_retries(
            "database", lambda: store.existing_customers(pool, merchant_id, hashes)
        )
        fresh = [item for item in batch if item.email_hash not in existing]
        rows = [
            {
                "id": self._new_id(item.email_hash),
                "email": item.row.email,
                "metadata": imported_metadata({}, self.job.source, self._fields(item.row)),
            }
            for item in fresh
        ]
        inserted = await self._with_retries(
            "database", lambda: store.insert_customers(pool, merchant_id, rows)
        )
        raced = [item.email_hash for item in fresh if item.email_hash not in inserted]
        if raced:  # created meanwhile by someone else (or an id clash): look them up again
            existing |= await self._with_retries(
                "database", lambda: store.existing_customers(pool, merchant_id, raced)
            )
        return existing, inserted

    async def _announce(self, created: list[tuple[_Pending, str]]) -> None:
        if not created:
            return
        now = datetime.now(UTC)
        records = [
            {
                # The same customer from a re-run of this import gets the same event id.
                "event_id": str(uuid.uuid5(self.namespace, f"created:{customer_id}")),
                "customer_id": customer_id,
                "merchant_id": self.job.merchant_id,
                "email_hash": item.email_hash,
                "created_at": now,
            }
            for item, customer_id in created
        ]
        await self._with_retries("broker", lambda: self.io.publish_created(records))

    async def _send_updates(self, updates: list[tuple[_Pending, str]]) -> None:
        by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for item, customer_id in updates:
            key = customer_key(self.job.merchant_id, customer_id)
            by_partition[key_partition(key, self.io.partitions)].append(
                {"customer_id": customer_id, "row": item.row.row, "fields": self._fields(item.row)}
            )
        for partition, customers in by_partition.items():
            for start in range(0, len(customers), UPDATE_COMMAND_MAX):
                chunk = customers[start : start + UPDATE_COMMAND_MAX]
                self.commands_sent += 1
                command_id = f"{self.job.import_id}:{self.state.get('runs', 1)}:{self.commands_sent}"
                command = {
                    "kind": "import_update",
                    "command_id": command_id,
                    "import_id": self.job.import_id,
                    "merchant_id": self.job.merchant_id,
                    "source": self.job.source,
                    "occurred_at_ms": self.job.requested_at_ms,
                    "reply_to": self.io.reply_channel(self.job.import_id),
                    "customers": chunk,
                }
                self.awaiting[command_id] = [customer["row"] for customer in chunk]
                self.all_confirmed.clear()
                await self._with_retries("broker", lambda c=command, p=partition: self.io.send_update(p, c))

    # -- confirmations of updates -----------------------------------------------------------------

    async def _listen(self, replies: AsyncIterator[dict[str, Any]]) -> None:
        async for reply in replies:
            rows = self.awaiting.pop(str(reply.get("command_id")), None)
            if rows is None:
                continue  # a replayed command answered twice, or another run's
            updated = int(reply.get("updated", 0))
            self.progress.updated += updated
            metrics.import_customers.labels(self.job.source, "updated").inc(updated)
            for error in reply.get("errors", []):
                self._row_error(RowError(error.get("row"), str(error.get("error"))))
            if not self.awaiting:
                self.all_confirmed.set()

    async def _await_confirmations(self) -> None:
        try:
            await asyncio.wait_for(self.all_confirmed.wait(), self.settings.import_update_timeout)
        except TimeoutError:
            waiting = sum(len(rows) for rows in self.awaiting.values())
            raise ImportFailed(
                f"{waiting} updates of existing customers were not confirmed by their owners within "
                f"{self.settings.import_update_timeout:g}s; they apply when the owners catch up"
            ) from None
        self._save()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__
