"""Decoded table values of recently read keys, in front of RocksDB on the read path.

A RocksDB read (key encoding, a memtable or block lookup with the GIL released, JSON decoding) costs
more than everything else a table read does; admin UIs and RFM readers read the same customers again
and again (docs/decisions.md D44).

It never answers with a value RocksDB no longer holds:
- every write of the table goes through one function, which drops the key (`forget`);
- recovery and standby replication write RocksDB from the changelog without that function, so an
  entry is kept only for a partition this worker holds as active (never a standby's), only outside
  a rebalance (recovery runs inside one), and only for the consumer generation it was read in (the
  assignment changes with the generation);
- it is bounded (`TABLE_READ_MEMO_KEYS`, 0 turns it off); the oldest entry goes first.

Values are shared: callers must treat them as read-only (the read path copies what it returns).
"""

from __future__ import annotations

from typing import Any

from faust.types import AppT


class ReadMemo:
    def __init__(self, app: AppT, max_keys: int) -> None:
        self.app = app
        self.max_keys = max_keys
        self._values: dict[tuple[int, str], Any] = {}
        self._generation: int | None = None

    def get(self, partition: int, key: str) -> Any:
        """The remembered value of `key` in `partition`, or None."""
        return self._current().get((partition, key))

    def remember(self, partition: int, key: str, value: Any) -> None:
        """Keep a value just read from RocksDB, for a partition this worker holds as active (a
        standby partition is written from the changelog, around `forget`)."""
        if self.max_keys <= 0 or self.app.rebalancing:  # type: ignore[attr-defined]
            return
        values = self._current()
        if len(values) >= self.max_keys:
            del values[next(iter(values))]
        values[partition, key] = value

    def _current(self) -> dict[tuple[int, str], Any]:
        """The entries, emptied first if the consumer generation changed since they were read."""
        generation = self.app.consumer_generation_id  # type: ignore[attr-defined]
        if generation != self._generation:
            self._values.clear()
            self._generation = generation
        return self._values

    def forget(self, partition: int, key: str) -> None:
        self._values.pop((partition, key), None)

    def __len__(self) -> int:
        return len(self._values)
