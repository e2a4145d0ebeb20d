"""RowBatcher: the file in chunks to batches of valid rows; row errors, duplicates, retries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from core_app.customer_import.batcher import RowBatcher
from core_app.customer_import.fetch import Download, FetchError
from core_app.customer_import.retries import ImportFailed
from core_app.customer_import.tally import Pending, Tally
from tests.support.customer_import import SETTINGS, a_job, a_tally, custom_csv, retries
from tests.unit.fakes import chunked_download


class Source:
    """Opens `data`; attempt N breaks after `breaks[N]` chunks (a transient error) if listed."""

    def __init__(self, data: bytes, breaks: list[int | None] | None = None, fatal: bool = False) -> None:
        self.data, self.breaks, self.fatal, self.opened = data, breaks or [], fatal, 0

    def __call__(self) -> AbstractAsyncContextManager[Download]:
        return self._open()

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[Download]:
        self.opened += 1
        if self.fatal:
            raise FetchError("404 Not Found", transient=False)
        yield chunked_download(self.data, 16, self.breaks.pop(0) if self.breaks else None)


def batcher(source: Source, tally: Tally) -> tuple[RowBatcher, list[list[Pending]]]:
    batches: list[list[Pending]] = []

    async def submit(batch: list[Pending]) -> None:
        if batch:
            batches.append(batch)

    key = SETTINGS.email_hash_key.get_secret_value()
    return RowBatcher(source, submit, tally, retries(), 3, key), batches


async def test_rows_come_in_batches_of_the_batch_size() -> None:
    tally = a_tally(a_job())
    reader, batches = batcher(Source(custom_csv([f"c{n}@example.com" for n in range(7)])), tally)
    await reader.read()
    assert [len(batch) for batch in batches] == [3, 3, 1]
    assert [item.row.row for batch in batches for item in batch] == list(range(2, 9))
    assert tally.progress.processed == 7 and tally.progress.bytes_read == tally.progress.bytes_total


async def test_invalid_rows_and_duplicates_are_row_errors() -> None:
    tally = a_tally(a_job())
    emails = ["a@example.com", "not-an-email", "b@example.com", "A@example.com"]
    reader, batches = batcher(Source(custom_csv(emails)), tally)
    await reader.read()
    assert [item.row.email for batch in batches for item in batch] == ["a@example.com", "b@example.com"]
    errors = [(error.row, error.error) for error in tally.progress.errors.entries]
    assert errors[0][0] == 3 and errors[0][1].startswith("email:")
    assert errors[1] == (5, "duplicate email in this file (first at row 2)")


async def test_a_broken_download_is_retried_skipping_the_rows_handled() -> None:
    tally = a_tally(a_job())
    source = Source(custom_csv([f"c{n}@example.com" for n in range(10)]), breaks=[3])
    reader, batches = batcher(source, tally)
    await reader.read()
    rows = [item.row.row for batch in batches for item in batch]
    assert source.opened == 2 and rows == list(range(2, 12))  # each row once, none lost
    assert tally.progress.processed == 10


async def test_a_download_that_keeps_breaking_fails_the_import() -> None:
    source = Source(custom_csv(["a@example.com"] * 3), breaks=[0, 0, 0])
    reader, _ = batcher(source, a_tally(a_job()))
    with pytest.raises(ImportFailed, match="download failed after 3 tries"):
        await reader.read()


async def test_a_missing_file_fails_at_once() -> None:
    source = Source(b"", fatal=True)
    reader, _ = batcher(source, a_tally(a_job()))
    with pytest.raises(ImportFailed, match="download failed: 404"):
        await reader.read()
    assert source.opened == 1


async def test_a_file_without_its_required_columns_cannot_be_imported() -> None:
    reader, _ = batcher(Source(b"name,points\nZoe,1\n"), a_tally(a_job()))
    with pytest.raises(ImportFailed, match="the file cannot be imported"):
        await reader.read()
