"""Batches in flight and the progress ticker, the two pieces of timing the run coordinates."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core_app.customer_import.inflight import BatchesInFlight
from core_app.customer_import.tally import Pending
from core_app.customer_import.ticker import ProgressTicker
from core_app.domain.customer_import import ImportedRow
from tests.support.customer_import import a_job, a_tally


def batch(row: int) -> list[Pending]:
    return [Pending(ImportedRow(row, f"c{row}@example.com", {}), f"h{row}")]


async def test_at_most_the_slots_are_written_at_once_and_all_are_drained() -> None:
    running, most, written = 0, 0, []

    async def write(items: list[Pending]) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        written.append(items[0].row.row)
        running -= 1

    batches = BatchesInFlight(write, slots=2)
    for row in range(6):
        await batches.submit(batch(row))
    await batches.drain()
    assert sorted(written) == list(range(6)) and most == 2


async def test_a_failed_batch_is_raised_at_the_next_hand_over() -> None:
    async def write(items: list[Pending]) -> None:
        raise ConnectionError("database gone")

    batches = BatchesInFlight(write)
    await batches.submit(batch(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    with pytest.raises(ConnectionError):
        await batches.submit([])
    await batches.drain()  # raised once only


async def test_abandon_cancels_the_batches_still_writing() -> None:
    async def write(items: list[Pending]) -> None:
        await asyncio.sleep(10)

    batches = BatchesInFlight(write)
    await batches.submit(batch(1))
    await asyncio.wait_for(batches.abandon(), 1)
    assert batches.tasks == set()


async def test_the_ticker_publishes_at_its_rate_and_survives_a_failing_send() -> None:
    sent: list[dict[str, Any]] = []

    async def publish(message: dict[str, Any]) -> None:
        if not sent:
            sent.append({})
            raise ConnectionError("broker down")  # best effort: logged, not raised
        sent.append(message)

    ticker = ProgressTicker(a_tally(a_job()).progress, publish, 0.01)
    ticker.start()
    await asyncio.sleep(0.08)
    await ticker.stop()
    count = len(sent)
    await asyncio.sleep(0.03)
    assert count >= 3 and len(sent) == count  # stopped: nothing after the final message
    assert sent[-1]["type"] == "import.progress"
