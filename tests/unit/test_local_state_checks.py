"""Whether a partition's local state holds the changelog record at its persisted offset (D117)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from core_app.recovery import discard_partition, holds_record


class Store:
    """The parts of Faust's RocksDB store the checks use: partition databases, the key index."""

    def __init__(self, partitions: dict[int, dict[bytes, bytes]]) -> None:
        self._dbs = partitions
        self._key_index = {key: p for p, db in partitions.items() for key in db}

    def _db_for_partition(self, partition: int) -> Any:
        return Db(self._dbs.setdefault(partition, {}))

    def _decode_value(self, raw: bytes) -> Any:
        return json.loads(raw)


class Db:
    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.data = data

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def keys(self) -> list[bytes]:
        return list(self.data)

    def delete(self, key: bytes) -> None:
        del self.data[key]


def table(partitions: dict[int, dict[bytes, bytes]]) -> Any:
    return SimpleNamespace(data=Store(partitions))


KEY = b'"m:c1"'


def test_the_record_the_state_last_applied_is_what_it_holds() -> None:
    local = table({3: {KEY: b'{"version": 7}', b"__faust\x00offset__": b"41"}})
    assert holds_record(local, 3, KEY, b'{"version": 7}')
    assert holds_record(local, 3, KEY, b'{"version":7}')  # the same value, serialized another way


def test_another_record_at_the_persisted_offset_means_another_log() -> None:
    local = table({3: {KEY: b'{"version": 7}'}})
    assert not holds_record(local, 3, KEY, b'{"version": 2}')  # the key, at another version
    assert not holds_record(local, 3, b'"m:other"', b'{"version": 1}')  # a key it never had
    assert not holds_record(local, 3, KEY, None)  # a tombstone for a key it holds
    assert holds_record(local, 3, b'"m:gone"', None)  # a tombstone for a key it does not hold


def test_nothing_to_compare_passes() -> None:
    assert holds_record(SimpleNamespace(data=SimpleNamespace()), 0, KEY, b"{}")  # memory:// store
    assert holds_record(table({0: {}}), 0, None, b"{}")  # a record without a key


def test_discarding_a_partition_empties_it_and_its_index_but_not_the_others() -> None:
    local = table({1: {KEY: b"{}", b"__faust\x00offset__": b"9"}, 2: {b'"m:c2"': b"{}"}})
    assert discard_partition(local, 1) == 1
    assert local.data._dbs[1] == {}
    assert local.data._key_index == {b'"m:c2"': 2}
