"""Batches written concurrently: the next is parsed while others are written and announced. The
first failure of a batch is raised to the reader at its next hand-over, or when the run drains."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from core_app.customer_import.tally import Pending

WriteBatch = Callable[[list[Pending]], Awaitable[None]]


class BatchesInFlight:
    def __init__(self, write: WriteBatch, slots: int = 3) -> None:
        self.write = write
        self.slots = asyncio.Semaphore(slots)  # a reader ahead of the writers waits here
        self.tasks: set[asyncio.Task[None]] = set()
        self.failure: BaseException | None = None

    async def submit(self, batch: list[Pending]) -> None:
        """Start writing `batch` (none: only raise an earlier batch's failure)."""
        self._raise_failure()
        if not batch:
            return
        await self.slots.acquire()
        task = asyncio.create_task(self.write(batch))
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.slots.release()
        if not task.cancelled() and task.exception() is not None and self.failure is None:
            self.failure = task.exception()

    def _raise_failure(self) -> None:
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure

    async def drain(self) -> None:
        """Wait for every batch; raise the first failure."""
        if self.tasks:
            await asyncio.wait(set(self.tasks))
        self._raise_failure()

    async def abandon(self) -> None:
        """Cancel the batches still writing (the run failed or stops)."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(set(self.tasks))
        self.failure = None
