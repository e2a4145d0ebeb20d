"""Changelog records applied a fetch at a time, past Faust's per-message recovery path (D238).

Faust hands every changelog record it fetches (active recovery and standby replication alike) to its
drain loop one at a time: per record a Message, a `wait_first` with its tasks, the conductor's JSON
decode of key and value into an Event (which the store never reads: it writes the raw bytes), a
queue put and get (`asyncio.wait_for`, another task), and `need_recovery()` over every partition.
That held recovery near 6,000-8,000 records/s. Here `TunedConsumer._wait_next_records`
(core_app/kafka_transport.py) takes the changelog partitions' records out of each fetch before Faust
sees them and writes each partition's share into its RocksDB in one `WriteBatch`, raw bytes as
fetched (a tombstone deletes), with the partition's persisted offset in the same batch. Then the
recovery's bookkeeping is updated once per fetch (core_app/recovery.py `on_changelog_batch`).

What Faust's path checked per record is checked here per partition, with the same rules:
- nothing is applied once the flow stopped (a rebalance started; Faust drops the fetch too, and
  the recovery seeks every changelog partition again);
- only partitions the recovery holds as active or standby, and only records past both the
  consumer's read offset (stale records of a fetch before a seek) and the recovery's offset (D111's
  discard resets it with the local state);
- the recovery's offsets, Faust's read offsets (consumer lag) and the persisted offset end at the
  last record applied; recovery ends as Faust's would, when the confirmed highwaters are reached
  (D110), and the standbys are declared ready when they have none left.

A table with an `on_changelog_event` callback or a store without RocksDB partitions (memory://)
keeps Faust's path, as does everything with `RECOVERY_BATCH_APPLY=false` (the bench's baseline).
"""

from __future__ import annotations

import time
from typing import Any

from faust.types import TP
from prometheus_client import Counter
from rocksdict import WriteBatch

records_applied = Counter(
    "core_recovery_records_applied_total",
    "Changelog records written to the tables' RocksDB a fetch at a time (role: active or standby)",
    ["table", "role"],
)
keyless_skipped = Counter(
    "core_recovery_keyless_records_total",
    "Changelog records without a key, which no table can hold, skipped",
    ["table"],
)


def batchable(table: Any) -> bool:
    """The table's changelog may bypass Faust's per-record path: no per-event callback, RocksDB store."""
    return not getattr(table, "_on_changelog_event", None) and getattr(table.data, "_dbs", None) is not None


def write_partition(store: Any, partition: int, records: list[Any], after: int) -> tuple[int, int, int]:
    """Records with an offset past `after` in one WriteBatch with the persisted offset (the last one's).

    Returns (last offset applied or `after`, records written, keyless records skipped). Keys and values
    are written as fetched: the changelog holds exactly the bytes the store keeps (Faust's own apply
    writes them raw too).
    """
    batch = WriteBatch(raw_mode=True)
    put = batch.put
    delete = batch.delete
    last = after
    written = keyless = 0
    for record in records:
        offset = record.offset
        if offset <= after:
            continue  # stale: read before a seek, or already applied
        last = offset
        key = record.key
        if key is None:
            keyless += 1
            continue
        value = record.value
        if value is None:
            delete(key)
        else:
            put(key, value)
        written += 1
    if last > after:
        put(store.offset_key, str(last).encode())
        store._db_for_partition(partition).write(batch)
    return last, written, keyless


class ChangelogApply:
    """One per consumer: takes the changelog records out of a fetch and applies them (D238)."""

    def __init__(self, consumer: Any, enabled: bool) -> None:
        self.consumer = consumer
        self.enabled = enabled
        self._batchable: dict[str, bool] = {}  # changelog topic -> its table may be batched

    def take(self, records: dict[Any, list[Any]]) -> None:
        """Remove the batchable changelog partitions from `records` (one fetch) and apply them."""
        if not self.enabled or not records:
            return
        tables = self.consumer.app.tables
        changelogs = tables._changelogs  # changelog topic -> table
        mine = [tp for tp in records if tp.topic in changelogs and self._may_batch(tp.topic, changelogs)]
        if not mine:
            return
        taken = {tp: records.pop(tp) for tp in mine}
        consumer = self.consumer
        if not consumer.flow_active or consumer.should_stop:
            return  # a rebalance started: Faust drops the fetch; recovery seeks these partitions again
        self.apply(tables.recovery, changelogs, taken)

    def _may_batch(self, topic: str, changelogs: dict[str, Any]) -> bool:
        known = self._batchable.get(topic)
        if known is None:
            known = self._batchable[topic] = batchable(changelogs[topic])
        return known

    def apply(self, recovery: Any, changelogs: dict[str, Any], taken: dict[Any, list[Any]]) -> None:
        read_offsets = self.consumer._read_offset
        actives: list[TP] = []
        standbys: list[TP] = []
        for tp, batch in taken.items():
            if tp in recovery.active_tps:
                offsets, role, touched = recovery.active_offsets, "active", actives
            elif tp in recovery.standby_tps:
                offsets, role, touched = recovery.standby_offsets, "standby", standbys
            else:
                continue  # no longer this worker's: Faust's loop would only log it
            seen = offsets.get(tp)
            read = read_offsets.get(tp)
            after = max(-1 if seen is None else seen, -1 if read is None else read - 1)
            table = changelogs[tp.topic]
            last, written, keyless = write_partition(table.data, tp.partition, batch, after)
            if keyless:
                keyless_skipped.labels(table.name).inc(keyless)
            if last > after:
                offsets[tp] = last
                read_offsets[tp] = last
                touched.append(tp)
                records_applied.labels(table.name, role).inc(written)
        if actives or standbys:
            recovery.on_changelog_batch(time.monotonic(), actives, standbys)
