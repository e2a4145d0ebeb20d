"""The read path's shortcuts around Faust: table key bytes, and the memo of decoded table values."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faust.serializers.registry import Registry

from tables.read_memo import ReadMemo
from tables.rocksdb import encode_key


class JsonKeyStore:
    """What encode_key reads of a Faust store: its key serializer, and Faust's own encoding."""

    key_serializer = "json"

    def _encode_key(self, key: Any) -> bytes:
        encoded = Registry().dumps_key(str, key, serializer="json")
        assert encoded is not None
        return encoded


@pytest.mark.parametrize(
    "key",
    [
        "8af7de12-e122-45a3-98e1-672ebf371dfd:06263023-8e5f-46ec-be78-1447d0fb2b76",
        'quote " and back\\slash',
        "tab\there",
        "del\x7fchar",
        "é-merchant:ü-customer",
        "emoji 🎉",
        "",
    ],
)
def test_table_key_bytes_are_fausts(key: str) -> None:
    store = JsonKeyStore()
    assert encode_key(store, key) == store._encode_key(key)


def memo_for(app: SimpleNamespace, max_keys: int = 10) -> ReadMemo:
    return ReadMemo(app, max_keys)  # type: ignore[arg-type]


def test_memo_remembers_within_a_generation_and_forgets_on_write() -> None:
    app = SimpleNamespace(consumer_generation_id=3, rebalancing=False)
    memo = memo_for(app)
    assert memo.get(1, "k") is None
    memo.remember(1, "k", {"version": 1})
    assert memo.get(1, "k") == {"version": 1}
    assert memo.get(2, "k") is None  # another partition's copy of the key is another entry
    memo.forget(1, "k")
    assert memo.get(1, "k") is None


def test_memo_starts_over_with_each_consumer_generation() -> None:
    app = SimpleNamespace(consumer_generation_id=3, rebalancing=False)
    memo = memo_for(app)
    memo.remember(1, "k", {"version": 1})
    app.consumer_generation_id = 4  # a rebalance: partitions may have moved and been recovered
    assert memo.get(1, "k") is None
    assert len(memo) == 0


def test_memo_keeps_nothing_during_a_rebalance_or_when_turned_off() -> None:
    app = SimpleNamespace(consumer_generation_id=3, rebalancing=True)
    memo = memo_for(app)
    memo.remember(1, "k", {"version": 1})  # recovery may still be writing the partition
    assert memo.get(1, "k") is None
    app.rebalancing = False
    off = memo_for(app, max_keys=0)
    off.remember(1, "k", {"version": 1})
    assert off.get(1, "k") is None


def test_memo_is_bounded_and_drops_the_oldest_first() -> None:
    app = SimpleNamespace(consumer_generation_id=1, rebalancing=False)
    memo = memo_for(app, max_keys=3)
    for n in range(5):
        memo.remember(0, f"k{n}", {"n": n})
    assert len(memo) == 3
    assert [memo.get(0, f"k{n}") for n in range(5)] == [None, None, {"n": 2}, {"n": 3}, {"n": 4}]
