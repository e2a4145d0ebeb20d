"""Faust's table recovery, with the stream partitions resumed only after they are seeked.

Faust 0.15 ends recovery by resuming the source partitions, then seeking them to their committed
offsets, then resuming flow control, which clears every agent's queue. Recovery has already turned
the flow on (to read the changelogs), so between those steps the fetcher delivers source messages and
advances the consumer's read offsets. The queue clear then drops the delivered ones, and the re-fetch
after the seek skips them as already read: events lost without a trace, while later offsets commit.
Seen after a SIGKILL restart as four to eleven events missing per partition (docs/decisions.md D39).

Here the seek comes first, while the partitions are still paused, then the queues are cleared, and
only then do the partitions resume, so the first message delivered is the committed one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.tables import TableManager
from faust.tables.recovery import Recovery


class SeekFirstRecovery(Recovery):
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


class CoreTableManager(TableManager):
    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = SeekFirstRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
