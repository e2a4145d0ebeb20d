"""The progress of a run on core.updates: best effort, at a fixed rate, and the final message last."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from core_app.domain.customer_import import ImportProgress

log = logging.getLogger(__name__)

PublishProgress = Callable[[dict[str, Any]], Awaitable[None]]


class ProgressTicker:
    def __init__(self, progress: ImportProgress, publish: PublishProgress, interval: float) -> None:
        self.progress = progress
        self.send = publish
        self.interval = interval
        self._ticker: asyncio.Task[None] | None = None
        self._sending: asyncio.Task[None] | None = None  # the ticker's message in flight

    async def publish(self) -> None:
        """The progress now; a failure is logged, not raised (the log row is the record)."""
        try:
            await self.send(self.progress.message())
        except Exception as exc:
            log.warning(
                "progress not published", extra={"import_id": self.progress.import_id, "error": str(exc)}
            )

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        """A slow send or a busy loop delays one message, not the schedule."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += self.interval
            await asyncio.sleep(max(0.0, due - loop.time()))
            due = max(due, loop.time() - self.interval)  # after a long stall, do not burst to catch up
            if self._sending is None or self._sending.done():
                self._sending = asyncio.create_task(self.publish())

    async def stop(self) -> None:
        """Stop ticking and let the last message out first: the final message must come last."""
        if self._ticker is not None:
            self._ticker.cancel()
        if self._sending is not None and not self._sending.done():
            await asyncio.wait({self._sending}, timeout=5)
