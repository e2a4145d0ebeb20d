"""Faust's table recovery, with the stream partitions resumed only after they are seeked.

Faust 0.15 ends recovery by resuming the source partitions, then seeking them to their committed
offsets, then resuming flow control, which clears every agent's queue. Recovery has already turned
the flow on (to read the changelogs), so between those steps the fetcher delivers source messages and
advances the consumer's read offsets. The queue clear then drops the delivered ones, and the re-fetch
after the seek skips them as already read: events lost without a trace, while later offsets commit.
Seen after a SIGKILL restart as four to eleven events missing per partition (docs/decisions.md D39).

Here the seek comes first, while the partitions are still paused, then the queues are cleared, and
only then do the partitions resume, so the first message delivered is the committed one.

Three more departures (docs/decisions.md D110-D112):
- highwaters are confirmed by a fetch (core_app/end_offsets.py), since Tansu under-reports them;
- a partition whose local state is ahead of its changelog (the topic was recreated, truncated or
  restored) is not a crash: its local state is discarded, rebuilt from what the changelog holds, and
  the rest is loaded from PostgreSQL on first touch (tables/customers.py);
- `serving` says when this worker's active partitions may answer reads: not from the start of a
  rebalance until their recovery is complete and the streams are resumed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as TallyOf
from collections.abc import Set
from typing import Any

from aiokafka import TopicPartition
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP, ConsumerT, TableT
from prometheus_client import Counter

from core_app.end_offsets import EndOffsetProbe

log = logging.getLogger(__name__)

highwaters_corrected = Counter(
    "core_recovery_highwaters_corrected_total",
    "Changelog end offsets reported lower than a fetch found (the broker under-reported)",
    ["table"],
)
state_discarded = Counter(
    "core_table_state_discarded_total",
    "Table partitions whose local state was ahead of the changelog, discarded and rebuilt",
    ["table", "role"],
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


class SeekFirstRecovery(Recovery):
    def __init__(self, app: Any, tables: Any, **kwargs: Any) -> None:
        super().__init__(app, tables, **kwargs)
        self.end_probe = EndOffsetProbe(app.core_settings.kafka_bootstrap)
        self.serving = False
        self.serving_started = asyncio.Event()
        self.last_discard: tuple[float, str] | None = None  # (monotonic time, what was found)

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
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def _build_highwaters(
        self, consumer: ConsumerT, tps: Set[TP], destination: TallyOf[TP], title: str
    ) -> None:
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
            ahead = self._discard_ahead(tps, self.standby_offsets, destination, "standby")
            if ahead:  # standbys were seeked before their highwaters were known: seek again
                await self._seek_offsets(consumer, ahead, self.standby_offsets, "standby")

    async def _build_offsets(
        self, consumer: ConsumerT, tps: Set[TP], destination: TallyOf[TP], title: str
    ) -> None:
        await super()._build_offsets(consumer, tps, destination, title)
        if title == "active":
            self._discard_ahead(tps, destination, self.active_highwaters, "active")

    def _discard_ahead(
        self, tps: Set[TP], offsets: TallyOf[TP], highwaters: TallyOf[TP], role: str
    ) -> set[TP]:
        """Partitions whose persisted offset is beyond the changelog's last offset, discarded."""
        ahead = {
            tp
            for tp in tps
            if tp in highwaters and offsets.get(tp) is not None and offsets[tp] > max(highwaters[tp], -1)
        }
        for tp in ahead:
            table = self.tp_to_table[tp]
            removed = discard_partition(table, tp.partition)
            log.warning(
                "table state ahead of its changelog; discarded and rebuilding from the changelog, then "
                "PostgreSQL on first touch",
                extra={
                    "table": table.name,
                    "partition": tp.partition,
                    "role": role,
                    "persisted_offset": offsets[tp],
                    "changelog_last_offset": highwaters[tp],
                    "keys_discarded": removed,
                },
            )
            state_discarded.labels(table.name, role).inc()
            self.last_discard = (
                time.monotonic(),
                f"{tp.topic}[{tp.partition}] ended at {highwaters[tp]} below the persisted {offsets[tp]}",
            )
            offsets[tp] = -1
        return ahead

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


def partition_checks(app: Any) -> dict[str, bool]:
    """For `/ready`: no assigned partition is recovering, and the consumer group is not rebalancing."""
    return {"partitions_recovered": bool(app.tables.recovery.serving), "group_stable": not app.rebalancing}


def broker_data_check(app: Any, hold_seconds: float) -> str:
    """For `/health`: DOWN for `hold_seconds` after a changelog was found behind local state, which
    means the broker lost data (wiped, topic recreated or truncated); UP otherwise."""
    last = app.tables.recovery.last_discard
    if last is None or time.monotonic() - last[0] > hold_seconds:
        return "UP"
    return f"DOWN: the broker lost data: {last[1]}"
