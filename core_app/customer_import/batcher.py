"""The reader/batcher of a run: streams the source, parses and checks its rows, and hands batches
of IMPORT_BATCH_SIZE valid rows on. A download that breaks midway is retried from the start of the
file, skipping the rows already handled."""

from __future__ import annotations

import codecs
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from core_app.customer_import import metrics
from core_app.customer_import.fetch import Download
from core_app.customer_import.retries import Retries
from core_app.customer_import.tally import Pending, Tally
from core_app.domain.customer_import import Deduper, FileReader, ImportedRow, RowError
from core_app.domain.email import email_hash

Submit = Callable[[list[Pending]], Awaitable[None]]


class RowBatcher:
    def __init__(
        self,
        open_source: Callable[[], AbstractAsyncContextManager[Download]],
        submit: Submit,
        tally: Tally,
        retries: Retries,
        batch_size: int,
        hash_key: str,
    ) -> None:
        self.open_source = open_source
        self.submit = submit  # also called with [] after each attempt: it raises a batch's failure
        self.tally = tally
        self.retries = retries
        self.batch_size = batch_size
        self.hash_key = hash_key
        self.dedupe = Deduper()
        self.rows_done = 0  # highest record number handled, so a retried download skips them
        self.pending: list[Pending] = []

    async def read(self) -> None:
        """The whole source, retried on transient failures (ImportFailed when they persist)."""
        await self.retries.download(self._read_once)

    async def _read_once(self) -> None:
        skip_until = self.rows_done
        progress = self.tally.progress
        try:
            async with self.open_source() as download:
                progress.bytes_total = download.size
                reader = FileReader(progress.source)
                decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
                seen = 0
                async for chunk in download.chunks:
                    seen += len(chunk)
                    progress.bytes_read = max(progress.bytes_read, seen)
                    began = time.perf_counter()
                    parsed = reader.feed(decoder.decode(chunk))
                    self.tally.seconds["parse"] += time.perf_counter() - began
                    await self._take(parsed, skip_until)
                await self._take(reader.feed(decoder.decode(b"", final=True)) + reader.finish(), skip_until)
        finally:
            # Rows read before a broken download are good: write them before any retry.
            await self.flush()

    async def _take(self, parsed: list[tuple[int, ImportedRow | RowError]], skip_until: int) -> None:
        taken = 0
        for row, outcome in parsed:
            if row <= skip_until:
                continue
            self.rows_done = row
            self.tally.progress.processed += 1
            taken += 1
            if isinstance(outcome, RowError):
                self.tally.row_error(outcome)
                continue
            began = time.perf_counter()
            digest = email_hash(outcome.email, self.hash_key)
            self.tally.seconds["hash"] += time.perf_counter() - began
            duplicate = self.dedupe.check(row, digest)
            if duplicate is not None:
                self.tally.row_error(duplicate)
                continue
            self.pending.append(Pending(outcome, digest))
            if len(self.pending) >= self.batch_size:
                await self.flush()
        metrics.import_rows_processed.labels(self.tally.source).inc(taken)

    async def flush(self) -> None:
        batch, self.pending = self.pending, []
        await self.submit(batch)

    def abandon(self) -> None:
        self.pending = []
