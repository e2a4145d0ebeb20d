"""One import run: the coordinator of its three collaborators.

`RowBatcher` (batcher.py) streams the file and cuts batches of valid rows; `StoreWriter`
(writer.py) writes each batch to PostgreSQL and announces the new customers; `OwnerUpdates`
(owner_updates.py) sends the existing ones to their owners and collects the confirmations. The
run keeps several batches in flight (parse the next while others are written and announced), saves
the log state after each, publishes progress at a fixed rate, and ends `completed` or `failed`.
Transient failures are retried (retries.py); cancellation leaves the job resumable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from core_app.customer_import import metrics
from core_app.customer_import.batcher import RowBatcher
from core_app.customer_import.inflight import BatchesInFlight
from core_app.customer_import.job import ImportJob
from core_app.customer_import.owner_updates import OwnerUpdates
from core_app.customer_import.ports import JobIO
from core_app.customer_import.retries import ImportFailed, Retries
from core_app.customer_import.tally import Pending, Tally
from core_app.customer_import.ticker import ProgressTicker
from core_app.customer_import.writer import StoreWriter
from core_app.domain.customer_import import ErrorLog, ImportProgress, advance_log

log = logging.getLogger(__name__)

MAX_RUNS = 10  # a job interrupted (restart, rebalance) this often fails rather than loop on a crash


class ImportRun:
    def __init__(self, job: ImportJob, state: dict[str, Any], io: JobIO) -> None:
        self.job = job
        self.io = io
        self.settings = settings = io.settings
        self.runs = int(state.get("runs", 0)) + 1
        self.state = {**state, "runs": self.runs, "requested_at_ms": job.requested_at_ms}
        errors = ErrorLog(settings.import_error_log_max)
        self.progress = ImportProgress(job.import_id, job.merchant_id, job.source, errors=errors)
        self.tally = Tally(self.progress)
        retries = Retries(settings)
        # Three batches in flight, at most two in PostgreSQL at once: the database stays busy while a
        # batch's events go out.
        self.batches = BatchesInFlight(self._write_batch, slots=3)
        self.db_slots = asyncio.Semaphore(2)
        self.batcher = RowBatcher(
            lambda: io.open_source(job),
            self.batches.submit,
            self.tally,
            retries,
            settings.import_batch_size,
            settings.email_hash_key.get_secret_value(),
        )
        self.writer = StoreWriter(
            job.import_id,
            job.merchant_id,
            job.created_at,
            io.rows,
            io.publish_created,
            retries,
            self.tally,
            self.db_slots,
            io.seal_emails,
            settings.email_encryption_key.get_secret_value(),
        )
        channel = io.reply_channel(job.import_id)
        self.owners = OwnerUpdates(
            job, self.runs, io.partitions, channel, io.send_update, retries, self.tally
        )
        self.ticker = ProgressTicker(self.progress, io.publish_progress, settings.import_progress_interval)

    # -- the run ----------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Run to the end; returns the final log state. Cancellation leaves the job resumable."""
        started = time.monotonic()
        self.progress.status = "processing"
        self._save()
        await self.ticker.publish()
        self.ticker.start()
        try:
            status, reason = await self._outcome()
        finally:
            await self.ticker.stop()
        # Only now: no ticker message can follow the final one.
        self.progress.status, self.progress.failure_reason = status, reason
        self.progress.total = self.progress.processed
        self._save()
        await self.ticker.publish()
        self._report(time.monotonic() - started)
        return self.state

    async def _outcome(self) -> tuple[str, str | None]:
        try:
            await self._work()
        except ImportFailed as exc:
            await self._abandon()
            return "failed", str(exc)
        except asyncio.CancelledError:
            await self._abandon()
            raise
        except Exception as exc:
            log.exception("import run failed", extra={"import_id": self.job.import_id})
            await self._abandon()
            return "failed", f"internal error: {type(exc).__name__}"
        return "completed", None

    async def _work(self) -> None:
        async with self.io.replies(self.io.reply_channel(self.job.import_id)) as replies:
            listener = asyncio.create_task(self.owners.listen(replies))
            try:
                if self.runs > MAX_RUNS:
                    raise ImportFailed(f"the import was interrupted {self.runs - 1} times; start it again")
                if not await self.io.import_enabled(self.job.merchant_id):
                    raise ImportFailed("customer imports are disabled for this merchant")
                await self.batcher.read()
                await self._drain()
                await self.owners.confirmed(self.settings.import_update_timeout)
                self._save()
            finally:
                listener.cancel()

    def _report(self, seconds: float) -> None:
        progress, source = self.progress, self.job.source
        metrics.imports_finished.labels(source, progress.status).inc()
        metrics.import_duration.labels(source, progress.status).observe(seconds)
        stages = {stage: round(value, 2) for stage, value in self.tally.seconds.items()}
        log.info(
            "import %s ended %s after %.1fs (stage seconds %s)",
            self.job.import_id,
            progress.status,
            seconds,
            stages,
            extra={
                "import_id": self.job.import_id,
                "status": progress.status,
                "processed": progress.processed,
                "succeeded": progress.succeeded,
                "failed": progress.failed,
                "seconds": round(seconds, 2),
                "reason": progress.failure_reason,
                "stage_seconds": stages,
            },
        )

    def _save(self) -> None:
        self.state = advance_log(self.state, self.progress)
        self.io.save_log(self.state)

    # -- batches in flight ------------------------------------------------------------------------

    async def _write_batch(self, batch: list[Pending]) -> None:
        updates = await self.writer.write(batch)
        await self.owners.gather(updates)
        self._save()

    async def _drain(self) -> None:
        if self.batcher.pending:
            await self.batcher.flush()
        await self.batches.drain()
        await self.owners.flush()

    async def _abandon(self) -> None:
        self.batcher.abandon()
        await self.batches.abandon()
        self.owners.abandon()
