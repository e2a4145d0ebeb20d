"""Emails seen earlier in an import's file, in flat memory (docs/decisions.md D243).

A dict of 16-byte keys to row numbers cost ~130 bytes an email, 130 MB for a 1,000,000-row file.
Here each seen email costs one slot of three machine arrays (a 96-bit prefix of its keyed hash and
its row, 16 bytes) in open-addressed tables kept at most 3/4 full: about 21-32 bytes an email. The
keys are spread over 256 tables by their first byte so a table that grows copies 1/256 of the whole,
and RSS does not jump when it does. A slot holds its row plus one, so 0 marks an empty slot.
"""

from __future__ import annotations

from array import array

SHARDS = 256
_START = 64  # slots of a table at first (a power of two)


class _Table:
    __slots__ = ("high", "low", "rows", "used")

    def __init__(self, size: int) -> None:
        self.high = array("Q", bytes(8 * size))
        self.low = array("I", bytes(4 * size))
        self.rows = array("I", bytes(4 * size))
        self.used = 0

    def setdefault(self, high: int, low: int, row: int) -> int:
        """The row stored for the key, storing `row` when the key is new."""
        mask = len(self.rows) - 1
        slot = (high ^ low) & mask
        rows, highs, lows = self.rows, self.high, self.low
        while rows[slot]:
            if highs[slot] == high and lows[slot] == low:
                return rows[slot]
            slot = (slot + 1) & mask
        highs[slot], lows[slot], rows[slot] = high, low, row
        self.used += 1
        return row

    def grown(self) -> _Table:
        bigger = _Table(2 * len(self.rows))
        for slot, row in enumerate(self.rows):
            if row:
                bigger.setdefault(self.high[slot], self.low[slot], row)
        return bigger


class Deduper:
    """Emails seen earlier in this file, by keyed hash (never by plaintext): the first row of each."""

    def __init__(self) -> None:
        self._tables = [_Table(_START) for _ in range(SHARDS)]

    def first_row(self, row: int, email_hash: str) -> int:
        """The first row of the email; `row` itself when the email is new."""
        prefix = int(email_hash[:24], 16)  # 96 bits of the hex HMAC
        shard, high, low = prefix >> 88, (prefix >> 32) & (2**64 - 1), prefix & 0xFFFFFFFF
        table = self._tables[shard]
        if 4 * (table.used + 1) > 3 * len(table.rows):
            table = self._tables[shard] = table.grown()
        return table.setdefault(high, low, row + 1) - 1

    def __len__(self) -> int:
        return sum(table.used for table in self._tables)
