"""Faust's table recovery, with the stream partitions resumed only after they are seeked.

Faust 0.15 ends recovery by resuming the source partitions, then seeking them to their committed
offsets, then resuming flow control, which clears every agent's queue. Recovery has already turned
the flow on (to read the changelogs), so between those steps the fetcher delivers source messages and
advances the consumer's read offsets. The queue clear then drops the delivered ones, and the re-fetch
after the seek skips them as already read: events lost without a trace, while later offsets commit.
Seen after a SIGKILL restart as four to eleven events missing per partition (docs/decisions.md D39).

Here the seek comes first, while the partitions are still paused, then the queues are cleared, and
only then do the partitions resume, so the first message delivered is the committed one.

Four more departures (docs/decisions.md D110-D112, D117, D238):
- highwaters are confirmed by a fetch (core_app/end_offsets.py), since Tansu under-reports them;
- a partition whose local state the changelog no longer holds is not a crash: its local state is
  discarded, rebuilt from what the changelog holds, and the rest is loaded from PostgreSQL on first
  touch (tables/customers.py). That is when the changelog ends before the persisted offset (ahead),
  holds another record at it (unrelated: the topic was recreated and grew past it), or starts after
  it (truncated by retention, faust #651);
- `serving` says when this worker's active partitions may answer reads: not from the start of a
  rebalance until their recovery is complete and the streams are resumed;
- changelog records reach the tables a fetch at a time (core_app/changelog_apply.py), and
  `on_changelog_batch` keeps the bookkeeping Faust's per-record loop kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter as TallyOf
from collections.abc import Set
from typing import Any

from aiokafka import TopicPartition
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP, ConsumerT, TableT
from faust.utils.tracing import finish_span
from prometheus_client import Counter

from core_app.end_offsets import EndOffsetProbe
from core_app.kafka_security import client_options
from core_app.topic_repair import repair_topics

log = logging.getLogger(__name__)

highwaters_corrected = Counter(
    "core_recovery_highwaters_corrected_total",
    "Changelog end offsets reported lower than a fetch found (the broker under-reported)",
    ["table"],
)
state_discarded = Counter(
    "core_table_state_discarded_total",
    "Table partitions whose local state the changelog no longer holds, discarded and rebuilt "
    "(reason: ahead of it, unrelated to it, or it was truncated)",
    ["table", "role", "reason"],
)


def discard_partition(table: TableT, partition: int) -> int:
    """Empty one partition of a table's RocksDB store, its persisted offset included; the keys removed."""
    store: Any = table.data
    dbs = getattr(store, "_dbs", None)
    if dbs is None:  # memory:// keeps no offsets, so it is never ahead of the changelog
        return 0
    db = store._db_for_partition(partition)
    keys = list(db.keys())
    for key in keys:
        db.delete(key)
    index = store._key_index
    for key in [key for key, where in index.items() if where == partition]:
        del index[key]
    return max(0, len(keys) - 1)  # the offset key is not a table key


def holds_record(table: TableT, partition: int, key: bytes | None, value: bytes | None) -> bool:
    """Whether the local state holds the changelog record at its persisted offset: the last record it
    applied or wrote, so the key's local value must be that record's value (absent for a tombstone)."""
    store: Any = table.data
    if getattr(store, "_dbs", None) is None or key is None:
        return True  # nothing persisted locally, or not a table record: nothing to compare
    local = store._db_for_partition(partition).get(key)
    if value is None or local is None:
        return value is None and local is None
    if local == value:
        return True
    try:  # the same value written through another serializer path
        return bool(store._decode_value(local) == store._decode_value(value))
    except ValueError:
        return False


class SeekFirstRecovery(Recovery):
    def __init__(self, app: Any, tables: Any, **kwargs: Any) -> None:
        super().__init__(app, tables, **kwargs)
        self.end_probe = EndOffsetProbe(client_options(app.core_settings))
        self.serving = False
        self.serving_started = asyncio.Event()
        self._persisted: dict[str, dict[TP, int]] = {}  # role -> persisted offsets being checked
        self._recoveries = 0  # started by this process; the first follows the start's own declarations

    def set_serving(self, serving: bool) -> None:
        self.serving = serving
        if serving:
            self.serving_started.set()
        else:
            self.serving_started.clear()

    async def on_stop(self) -> None:
        await super().on_stop()
        await self.end_probe.close()

    def on_partitions_revoked(self, revoked: Set[TP]) -> None:
        self.set_serving(False)
        super().on_partitions_revoked(revoked)

    async def on_rebalance(
        self, assigned: Set[TP], revoked: Set[TP], newly_assigned: Set[TP], generation_id: int = 0
    ) -> None:
        self.set_serving(False)
        log.info(
            "rebalance: generation %s, %d partitions assigned (%d new, %d revoked)",
            generation_id,
            len(assigned),
            len(newly_assigned),
            len(revoked),
            extra={"generation": generation_id},
        )
        self.app.broker_watch.on_assignment(generation_id)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def _build_highwaters(
        self, consumer: ConsumerT, tps: Set[TP], destination: TallyOf[TP], title: str
    ) -> None:
        if title == "active":  # the first step of every recovery
            await self._repair_topics()
        reported = await consumer.highwaters(*tps)
        confirmed = await self.end_probe.confirm(
            {TopicPartition(tp.topic, tp.partition): end for tp, end in reported.items()}
        )
        highwaters: dict[TP, int] = {}
        for tp, end in reported.items():
            true_end = confirmed.get(TopicPartition(tp.topic, tp.partition), end)
            if end is not None and true_end is not None and true_end > end:
                highwaters_corrected.labels(self.tp_to_table[tp].name).inc()
            # Faust's highwater is the last offset (end - 1), -1 for an empty partition.
            highwaters[tp] = true_end - 1 if true_end is not None else -1
        self.log.info(
            "Highwater for %s changelog partitions:\n%s",
            title,
            self._highwater_logtable(highwaters, title=title),
        )
        destination.clear()
        destination.update(highwaters)
        if title == "standby":
            discarded = await self._check_against_changelog(tps, self.standby_offsets, destination, "standby")
            if discarded:  # standbys were seeked before their highwaters were known: seek again
                await self._seek_offsets(consumer, discarded, self.standby_offsets, "standby")

    async def _repair_topics(self) -> None:
        """The topics the broker lost, created again with the tables' partitions (D208): a broker
        that lost the group (which is why this recovery runs) may have lost them too."""
        conf_partitions = self.app.conf.topic_partitions
        changelogs = {
            table.changelog_topic.get_topic_name(): table.changelog_topic.partitions or conf_partitions
            for table in self.tables.values()
        }
        repair = await repair_topics(self.app.core_settings, changelogs)
        self._recoveries += 1
        if repair.created and self._recoveries > 1:  # at start, Faust declares the changelogs later
            self.app.broker_watch.lost_data("topics", f"topics gone: {', '.join(sorted(repair.created))}")
        for name, (have, want) in repair.wrong.items():
            self.app.broker_watch.lost_data("topics", f"{name} has {have} partitions, the tables need {want}")

    async def _build_offsets(
        self, consumer: ConsumerT, tps: Set[TP], destination: TallyOf[TP], title: str
    ) -> None:
        # Before Faust raises the offsets to the changelog's start: a persisted offset below it means
        # the changelog lost records the local state never saw (retention, faust #651).
        persisted = {tp: offset for tp in tps if (offset := destination.get(tp)) is not None and offset >= 0}
        if persisted:
            starts = await consumer.earliest_offsets(*persisted)
            for tp, offset in persisted.items():
                start = starts.get(tp)
                if start is not None and offset + 1 < start:
                    self._discard(tp, title, "truncated", f"starts at {start}, after the persisted {offset}")
                    destination[tp] = -1
        self._persisted[title] = {tp: offset for tp, offset in persisted.items() if destination[tp] >= 0}
        await super()._build_offsets(consumer, tps, destination, title)
        if title == "active":
            await self._check_against_changelog(tps, destination, self.active_highwaters, "active")

    async def _check_against_changelog(
        self, tps: Set[TP], offsets: TallyOf[TP], highwaters: TallyOf[TP], role: str
    ) -> set[TP]:
        """Partitions whose local state the changelog does not hold, discarded (D111, D117): the
        persisted offset is beyond the changelog's last offset (ahead), or the changelog's record at
        the persisted offset is not the one the local state holds (the topic was recreated: unrelated).
        """
        persisted = self._persisted.get(role, {})
        discarded: set[TP] = set()
        for tp in tps:
            offset = persisted.get(tp)
            if offset is not None and tp in highwaters and offset > max(highwaters[tp], -1):
                self._discard(tp, role, "ahead", f"ends at {highwaters[tp]}, before the persisted {offset}")
                discarded.add(tp)
        probed = {
            TopicPartition(tp.topic, tp.partition): offset
            for tp, offset in persisted.items()
            if tp in tps and tp not in discarded
        }
        records = await self.end_probe.records_at(probed) if probed else {}
        for position, record in records.items():
            tp = TP(position.topic, position.partition)
            if record is not None and record.offset == probed[position]:
                table = self.tp_to_table[tp]
                if not holds_record(table, tp.partition, record.key, record.value):
                    detail = f"holds another record at the persisted {record.offset}"
                    self._discard(tp, role, "unrelated", detail)
                    discarded.add(tp)
        for tp in discarded:
            offsets[tp] = -1
        return discarded

    def _discard(self, tp: TP, role: str, reason: str, detail: str) -> None:
        table = self.tp_to_table[tp]
        removed = discard_partition(table, tp.partition)
        what = f"{tp.topic}[{tp.partition}] {detail}"
        log.warning(
            "table state discarded (%s): %s; rebuilding from the changelog, then PostgreSQL on first touch",
            reason,
            what,
            extra={"table": table.name, "partition": tp.partition, "role": role, "keys_discarded": removed},
        )
        state_discarded.labels(table.name, role, reason).inc()
        if reason != "truncated":  # retention cut the changelog: a setting, not a broker that lost data
            self.app.broker_watch.lost_data("changelog", what)

    def on_changelog_batch(self, now: float, actives: list[TP], standbys: list[TP]) -> None:
        """What Faust's `_slurp_changelogs` does after each record, once per fetch applied in batches
        (core_app/changelog_apply.py, D238): progress times, the end of recovery once the confirmed
        highwaters are reached, the standbys declared ready once they have nothing left to read."""
        for tp in actives:
            self._active_events_received_at[tp] = now
        for tp in standbys:
            self._standby_events_received_at[tp] = now
        self._last_flush_at = now
        if self.in_recovery and not self.need_recovery():
            self.flush_buffers()  # whatever Faust's own path buffered (tables it still handles)
            self._set_recovery_ended()
            if self._actives_span is not None:
                self._actives_span.set_tag("Actives-Ready", True)
            self.signal_recovery_end.set()
        standbys_ready = self._standbys_span is None and self.tables.standbys_ready
        if not standbys_ready and not self.standby_remaining_total():
            if self._standbys_span:
                finish_span(self._standbys_span)
                self._standbys_span = None
            self.tables.on_standbys_ready()

    async def _resume_streams(self, generation_id: int = 0) -> None:
        await self.app.on_rebalance_complete.send()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        await self._seek_then_resume()
        self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        await asyncio.gather(
            *(
                table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
                for table in self.tables.values()
            )
        )
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        await self._seek_then_resume()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")

    async def _seek_then_resume(self) -> None:
        consumer = self.app.consumer
        assignment = consumer.assignment()
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
        self.completed.set()
        self.app.flow_control.resume()  # clears the queues: nothing of the paused partitions is in them
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        consumer.resume_flow()
        app: Any = self.app
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if self.app.consumer_generation_id == self._generation_id:
            self.set_serving(True)


class CoreTableManager(TableManager):
    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = SeekFirstRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


def tables_serving(app: Any) -> bool:
    """This worker's active table partitions are recovered and may answer reads (not mid-rebalance)."""
    recovery = app.tables.recovery
    return bool(recovery.serving) and not app.rebalancing


async def wait_serving(app: Any, timeout: float) -> bool:
    """`tables_serving`, waiting up to `timeout` seconds for a recovery in progress to complete."""
    if tables_serving(app):
        return True
    if timeout <= 0:
        return False
    try:
        await asyncio.wait_for(app.tables.recovery.serving_started.wait(), timeout)
    except TimeoutError:
        return False
    return tables_serving(app)
