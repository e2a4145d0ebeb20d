"""agents/take.py: batches as Faust's `take_events` makes them, and no wake-ups while idle (D236).

On a real Faust stream over an in-memory channel; the consumer, which the stream only tells of
acks, is a stand-in."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import MagicMock

import faust
import pytest
from faust.types import TP, EventT, Message, StreamT

from agents.take import take_events


def message(app: faust.App, offset: int) -> Message:
    return Message(
        "t", 0, offset, 0.0, 0, [], b"k", str(offset).encode(), None, 1, 1, TP("t", 0),
        generation_id=app.consumer_generation_id,
    )  # fmt: skip


@pytest.fixture
async def stream() -> AsyncIterator[StreamT]:
    app = faust.App(f"take-{uuid.uuid4().hex}", broker="kafka://127.0.0.1:1", store="memory://")
    app.flow_control.resume()
    app.consumer = MagicMock(name="consumer")  # the stream reports acks to it; nothing else
    faust_stream = app.channel(maxsize=1000).stream()
    async with faust_stream:
        yield faust_stream


class Batches:
    def __init__(self, stream: StreamT, max_: int, within: float) -> None:
        self.got: list[tuple[list[Any], float]] = []
        self.task = asyncio.ensure_future(self._collect(stream, max_, within))

    async def _collect(self, stream: StreamT, max_: int, within: float) -> None:
        async for batch in take_events(stream, max_, within):
            self.got.append(([event.value for event in batch], time.monotonic()))

    def values(self) -> list[list[Any]]:
        return [values for values, _ in self.got]


async def deliver(stream: StreamT, *offsets: int) -> None:
    for offset in offsets:
        await stream.channel.deliver(message(stream.app, offset))  # type: ignore[attr-defined]


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_full_batches_go_at_once_and_a_partial_one_after_within(stream: StreamT) -> None:
    batches = Batches(stream, max_=3, within=0.25)
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await deliver(stream, *range(7))
    await until(lambda: len(batches.got) >= 2)
    assert batches.values() == [[b"0", b"1", b"2"], [b"3", b"4", b"5"]]
    assert batches.got[1][1] - started < 0.25  # full batches are not held for `within`
    await until(lambda: len(batches.got) >= 3)
    assert batches.values()[2:] == [[b"6"]]
    assert batches.got[2][1] - started >= 0.22  # the partial batch waited for more
    batches.task.cancel()


async def test_an_idle_stream_does_not_wake_up(stream: StreamT) -> None:
    batches = Batches(stream, max_=3, within=0.01)
    await asyncio.sleep(0.05)
    waits = 0
    real_wait = stream.wait_for_stopped

    async def counted(*events: Any, **options: Any) -> Any:
        nonlocal waits
        waits += 1
        return await real_wait(*events, **options)

    stream.wait_for_stopped = counted  # type: ignore[method-assign]
    await asyncio.sleep(0.25)  # Faust's own take_events would wake 25 times here
    assert waits == 0
    await deliver(stream, 1)
    await until(lambda: batches.values() == [[b"1"]])
    batches.task.cancel()


async def test_every_event_of_a_batch_is_acked_once_it_is_handled(stream: StreamT) -> None:
    acked: list[EventT] = []
    real_ack = stream.ack

    async def ack(event: EventT) -> bool:
        acked.append(event)
        return await real_ack(event)

    stream.ack = ack  # type: ignore[method-assign]
    handled = asyncio.Event()
    release = asyncio.Event()

    async def handle() -> None:
        async for _batch in take_events(stream, 2, 0.01):
            handled.set()
            await release.wait()

    task = asyncio.ensure_future(handle())
    await deliver(stream, 1, 2)
    await asyncio.wait_for(handled.wait(), 2)
    assert acked == []  # not while the handler holds the batch
    release.set()
    await until(lambda: len(acked) == 2)
    assert [event.value for event in acked] == [b"1", b"2"]
    task.cancel()
