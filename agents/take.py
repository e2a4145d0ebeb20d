"""Batches of events from a Faust stream that cost nothing while the stream is idle.

Faust's `Stream.take_events(max_, within)` wakes every `within` seconds whether or not an event
came: with the pipeline's 20 ms that is 50 wake-ups a second per agent, each creating and cancelling
tasks in mode's `wait_first`. Five agents made an idle worker burn several percent of a core
(docs/decisions.md D236). This is the same generator with one change: while its buffer is empty it
waits for the first event without a timeout; from the first event on, a partial batch waits at most
`within` for more, and a full one goes at once. Acks, back-pressure and the clean-up on stop are
Faust's own (faust/streams.py, `take_events`, faust-streaming 0.15).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

from faust.types import ChannelT, EventT, StreamT


def take_events(stream: StreamT, max_: int, within: float) -> AsyncGenerator[list[EventT], None]:
    """Batches of at most `max_` events; a partial batch goes `within` seconds after its first."""
    batches = _take_events(stream, max_, within)
    # Registered like Faust's own buffering generators, so that Stream.on_stop closes it.
    stream._active_agens.add(batches)  # type: ignore[attr-defined]
    return batches


async def _take_events(stream: Any, max_: int, within: float) -> AsyncGenerator[list[EventT], None]:
    events: list[EventT] = []
    not_empty = asyncio.Event()
    full = asyncio.Event()
    consumed = asyncio.Event()
    consuming: asyncio.Future[None] | None = None

    async def add_to_buffer(value: Any) -> Any:
        nonlocal consuming
        try:
            if consuming is not None:
                try:
                    await consuming
                finally:
                    consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("Take buffer found current_event is None")
            events.append(event)
            not_empty.set()
            if len(events) >= max_:
                full.set()
                consumed.clear()
                await stream.wait(consumed)  # strictly no more than max_ per batch
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stream.log.exception("Error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    enable_acks = stream.enable_acks
    stream.enable_acks = False  # acked below, once the batch is handled
    stream.add_processor(add_to_buffer)
    stream._enable_passive(cast(ChannelT, aiter(cast(AsyncIterator[Any], stream.channel))))
    try:
        while not stream.should_stop:
            if not events and await stream.wait_for_stopped(not_empty):
                break
            if not full.is_set():
                await stream.wait_for_stopped(full, timeout=within)
            if not events:
                continue
            consuming = asyncio.get_running_loop().create_future()
            try:
                yield list(events)
            finally:
                batch, events[:] = list(events), []
                not_empty.clear()
                for event in batch:
                    await stream.ack(event)
                if consuming is not None and not consuming.done():
                    consuming.set_result(None)
                full.clear()
                consumed.set()
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add_to_buffer)
