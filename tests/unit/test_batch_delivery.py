"""Batched delivery (core_app/batch_delivery.py, D234): chunks keep each partition's order, offsets
are acked only after the handler returned, and nothing is handled once a rebalance started."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.types import TP

from core_app import batch_delivery
from core_app.batch_delivery import BatchDelivery, BatchEvent, chunks
from core_app.settings import Settings

RFM = TP("rfm.updated", 0)
RFM1 = TP("rfm.updated", 1)


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: Any = b"m:c"
    value: bytes = b"v"
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class App:
    consumer_generation_id: int = 3


@dataclass
class Consumer:
    app: App = field(default_factory=App)
    flow_active: bool = True
    _committed_offset: dict[TP, int | None] = field(default_factory=lambda: defaultdict(lambda: None))
    _acked_index: dict[TP, set[int]] = field(default_factory=lambda: defaultdict(set))
    _acked: dict[TP, list[int]] = field(default_factory=lambda: defaultdict(list))
    _read_offset: dict[TP, int | None] = field(default_factory=lambda: defaultdict(lambda: None))
    _n_acked: int = 0
    _waiting_for_ack: Any = None


def messages(tp: TP, first: int, count: int) -> list[Message]:
    return [Message(tp.topic, tp.partition, offset) for offset in range(first, first + count)]


def test_chunks_keep_each_partitions_order_and_split_long_runs() -> None:
    parts = [(RFM, messages(RFM, 0, 5)), (RFM1, messages(RFM1, 10, 2))]
    out = chunks(parts, 3)
    assert [[(tp.partition, [m.offset for m in ms]) for tp, ms in chunk] for chunk in out] == [
        [(0, [0, 1, 2])],
        [(0, [3, 4])],
        [(1, [10, 11])],
    ]


def test_a_key_that_is_not_utf8_stays_bytes() -> None:
    assert BatchEvent(Message("t", 0, 0, key=b"\xff")).key == b"\xff"
    assert BatchEvent(Message("t", 0, 0, key=b"m:c")).key == "m:c"


@pytest.fixture
def handled(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    seen: list[list[int]] = []

    async def handler(batch: list[BatchEvent]) -> None:
        seen.append([event.message.offset for event in batch])

    monkeypatch.setitem(batch_delivery.ROUTES, "rfm.updated", handler)
    return seen


async def test_offsets_are_acked_after_the_handler_and_never_below_the_commit(
    handled: list[list[int]],
) -> None:
    consumer = Consumer()
    consumer._committed_offset[RFM] = 2
    delivery = BatchDelivery(consumer, Settings(ingest_chunk_events=10))
    await delivery.deliver({RFM: messages(RFM, 0, 5)}, generation_id=3)
    assert handled == [[0, 1, 2, 3, 4]]
    assert consumer._acked[RFM] == [2, 3, 4]
    assert consumer._read_offset[RFM] == 4
    await delivery.deliver({RFM: messages(RFM, 4, 2)}, generation_id=3)
    assert consumer._acked[RFM] == [2, 3, 4, 5]  # offset 4 again: acked once


async def test_nothing_is_handled_or_acked_once_the_generation_changed(handled: list[list[int]]) -> None:
    consumer = Consumer()
    delivery = BatchDelivery(consumer, Settings())
    await delivery.deliver({RFM: messages(RFM, 0, 3)}, generation_id=2)
    consumer.flow_active = False
    await delivery.deliver({RFM: messages(RFM, 0, 3)}, generation_id=3)
    assert handled == []
    assert consumer._acked[RFM] == []


async def test_a_failing_handler_acks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(batch: list[BatchEvent]) -> None:
        raise RuntimeError("boom")

    monkeypatch.setitem(batch_delivery.ROUTES, "rfm.updated", broken)
    consumer = Consumer()
    with pytest.raises(RuntimeError):
        await BatchDelivery(consumer, Settings()).deliver({RFM: messages(RFM, 0, 3)}, generation_id=3)
    assert consumer._acked[RFM] == []


def test_delivery_can_be_turned_off(handled: list[list[int]]) -> None:
    assert BatchDelivery(Consumer(), Settings()).routed("rfm.updated")
    assert not BatchDelivery(Consumer(), Settings(ingest_batch_delivery=False)).routed("rfm.updated")
