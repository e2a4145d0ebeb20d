"""Changelog records applied a fetch at a time, one RocksDB WriteBatch per partition (D238).

The stores are real RocksDB databases (rocksdict, raw mode, as Faust opens them) behind a wrapper that
counts writes; the consumer and the recovery are fakes with Faust's own bookkeeping methods.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.tables.recovery import Recovery
from faust.types import TP
from rocksdict import Options, Rdict

from core_app.changelog_apply import ChangelogApply
from core_app.recovery import SeekFirstRecovery

CHANGELOG = "core-customers-changelog"
ACTIVE, STANDBY, ELSEWHERE = TP(CHANGELOG, 0), TP(CHANGELOG, 1), TP(CHANGELOG, 2)
SOURCE = TP("rfm.updated", 0)
OFFSET_KEY = b"__faust\x00offset__"


class CountingDb:
    """A partition's RocksDB; `writes` counts WriteBatches, `puts` single writes."""

    def __init__(self, path: Path) -> None:
        self.db = Rdict(str(path), options=Options(raw_mode=True))
        self.writes = 0
        self.puts = 0

    def write(self, batch: Any) -> None:
        self.writes += 1
        self.db.write(batch)

    def put(self, key: bytes, value: bytes) -> None:
        self.puts += 1
        self.db.put(key, value)

    def get(self, key: bytes) -> bytes | None:
        return self.db.get(key)  # type: ignore[no-any-return]


class Store:
    offset_key = OFFSET_KEY

    def __init__(self, root: Path) -> None:
        self._dbs = {p: CountingDb(root / f"customers-{p}.db") for p in range(3)}

    def _db_for_partition(self, partition: int) -> CountingDb:
        return self._dbs[partition]


class FakeRecovery:
    """The recovery's state and Faust's own arithmetic over it, with SeekFirstRecovery's hook."""

    need_recovery = Recovery.need_recovery
    active_remaining = Recovery.active_remaining
    standby_remaining = Recovery.standby_remaining
    standby_remaining_total = Recovery.standby_remaining_total
    on_changelog_batch = SeekFirstRecovery.on_changelog_batch

    def __init__(self, tables: Any) -> None:
        self.tables = tables
        self.active_tps = {ACTIVE}
        self.standby_tps = {STANDBY}
        self.active_offsets: Counter[TP] = Counter({ACTIVE: -1})
        self.standby_offsets: Counter[TP] = Counter({STANDBY: -1})
        self.active_highwaters: Counter[TP] = Counter({ACTIVE: 4})
        self.standby_highwaters: Counter[TP] = Counter({STANDBY: 2})
        self._active_events_received_at: dict[TP, float] = {}
        self._standby_events_received_at: dict[TP, float] = {}
        self._last_flush_at: float | None = None
        self._actives_span = self._standbys_span = None
        self.in_recovery = True
        self.signal_recovery_end = asyncio.Event()
        self.flushed = 0

    def flush_buffers(self) -> None:
        self.flushed += 1

    def _set_recovery_ended(self) -> None:
        self.in_recovery = False


class Tables:
    def __init__(self, table: Any) -> None:
        self._changelogs = {CHANGELOG: table}
        self.standbys_ready = False
        self.recovery = FakeRecovery(self)

    def on_standbys_ready(self) -> None:
        self.standbys_ready = True


def record(offset: int, key: bytes | None, value: bytes | None) -> Any:
    return SimpleNamespace(offset=offset, key=key, value=value)


@pytest.fixture
def setup(tmp_path: Path) -> Any:
    store = Store(tmp_path)
    table = SimpleNamespace(name="customers", data=store, _on_changelog_event=None)
    tables = Tables(table)
    consumer = SimpleNamespace(
        app=SimpleNamespace(tables=tables), flow_active=True, should_stop=False, _read_offset={}
    )
    return SimpleNamespace(store=store, table=table, tables=tables, consumer=consumer)


def fetch() -> dict[Any, list[Any]]:
    return {
        ACTIVE: [
            record(0, b'"m:a"', b'{"v":1}'),
            record(1, b'"m:b"', b'{"v":1}'),
            record(2, b'"m:a"', b'{"v":2}'),
            record(3, b'"m:b"', None),  # a tombstone: the key goes
            record(4, b'"m:c"', b'{"v":1}'),
        ],
        STANDBY: [
            record(0, b'"m:x"', b'{"v":1}'),
            record(1, b'"m:y"', b'{"v":1}'),
            record(2, b'"m:x"', None),
        ],
        SOURCE: [record(7, b"k", b"v")],
    }


def test_one_write_batch_per_partition_and_fetch_with_deletes_and_offsets(setup: Any) -> None:
    records = fetch()
    ChangelogApply(setup.consumer, enabled=True).take(records)
    assert list(records) == [SOURCE]  # the source topic's record stays for Faust's drain loop
    active, standby = setup.store._dbs[0], setup.store._dbs[1]
    assert (active.writes, active.puts, standby.writes, standby.puts) == (1, 0, 1, 0)
    assert active.get(b'"m:a"') == b'{"v":2}' and active.get(b'"m:b"') is None
    assert active.get(b'"m:c"') == b'{"v":1}' and active.get(OFFSET_KEY) == b"4"
    assert standby.get(b'"m:x"') is None and standby.get(b'"m:y"') == b'{"v":1}'
    assert standby.get(OFFSET_KEY) == b"2"
    recovery = setup.tables.recovery
    assert recovery.active_offsets[ACTIVE] == 4 and recovery.standby_offsets[STANDBY] == 2
    assert setup.consumer._read_offset == {ACTIVE: 4, STANDBY: 2}  # consumer lag, as the drain loop
    # the confirmed highwaters are reached: recovery ends, standbys are ready
    assert recovery.signal_recovery_end.is_set() and not recovery.in_recovery and recovery.flushed == 1
    assert setup.tables.standbys_ready


def test_records_already_applied_or_read_before_a_seek_are_skipped(setup: Any) -> None:
    recovery = setup.tables.recovery
    recovery.active_offsets[ACTIVE] = 2  # persisted: 0..2 applied before
    setup.store._dbs[0].db.put(b'"m:a"', b'{"v":2}')
    setup.consumer._read_offset[STANDBY] = 2  # sought to 2: records before it are stale
    apply = ChangelogApply(setup.consumer, enabled=True)
    records = fetch()
    records[ACTIVE][0] = record(0, b'"m:a"', b'{"v":"stale"}')
    apply.take(records)
    active, standby = setup.store._dbs[0], setup.store._dbs[1]
    assert active.get(b'"m:a"') == b'{"v":2}' and active.get(b'"m:c"') == b'{"v":1}'
    assert standby.get(b'"m:y"') is None and standby.get(OFFSET_KEY) == b"2"
    apply.take(fetch())  # the same fetch again: nothing new, nothing written
    assert (active.writes, standby.writes) == (1, 1)


def test_a_stopped_flow_drops_the_fetch_and_writes_nothing(setup: Any) -> None:
    setup.consumer.flow_active = False  # a rebalance started: recovery seeks these partitions again
    records = fetch()
    ChangelogApply(setup.consumer, enabled=True).take(records)
    assert list(records) == [SOURCE]
    assert all(db.writes == 0 for db in setup.store._dbs.values())
    assert setup.tables.recovery.active_offsets[ACTIVE] == -1


def test_a_partition_neither_active_nor_standby_is_not_written(setup: Any) -> None:
    records = {ELSEWHERE: [record(0, b'"m:z"', b"{}")]}
    ChangelogApply(setup.consumer, enabled=True).take(records)
    assert setup.store._dbs[2].writes == 0 and not records
    assert not setup.tables.recovery.signal_recovery_end.is_set()


def test_keyless_records_are_skipped_but_their_offsets_count(setup: Any) -> None:
    records = {ACTIVE: [record(0, b'"m:a"', b"{}"), record(1, None, b"{}")]}
    ChangelogApply(setup.consumer, enabled=True).take(records)
    assert setup.store._dbs[0].get(OFFSET_KEY) == b"1"
    assert setup.tables.recovery.active_offsets[ACTIVE] == 1


def test_recovery_ends_only_at_the_highwater(setup: Any) -> None:
    records = {ACTIVE: fetch()[ACTIVE][:3]}
    ChangelogApply(setup.consumer, enabled=True).take(records)
    recovery = setup.tables.recovery
    assert recovery.active_offsets[ACTIVE] == 2 and recovery.in_recovery
    assert not recovery.signal_recovery_end.is_set()


@pytest.mark.parametrize("why", ["disabled", "callback", "memory store"])
def test_faust_keeps_the_records_it_must_apply_itself(setup: Any, why: str) -> None:
    if why == "callback":
        setup.table._on_changelog_event = lambda event: None
    if why == "memory store":
        setup.table.data = SimpleNamespace()
    records = fetch()
    ChangelogApply(setup.consumer, enabled=why != "disabled").take(records)
    assert set(records) == {ACTIVE, STANDBY, SOURCE}
    assert all(db.writes == 0 for db in setup.store._dbs.values())
