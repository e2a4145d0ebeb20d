"""Whether the broker lost the service's data, and whether the consumer group is stable.

`/health` must turn DOWN when the broker lost the service's topics and group state (a wiped or
replaced broker, a recreated topic), not only when it does not answer (docs/decisions.md D115).
`BrokerWatch` keeps the evidence the worker sees on its own way:
- a changelog found behind the local state, or unrelated to it (recovery, D111);
- the group's generation going back: the coordinator forgot the group;
- committed offsets going back: a source partition's committed offset lower than one this worker
  committed itself (offsets only ever move forward);
- a membership the coordinator keeps refusing: commits failing, or the consumer out of the group
  after it had joined, for longer than a rebalance may take.
Each piece of evidence of lost data holds `/health` DOWN for `hold_seconds`; a refused membership
holds it while it lasts. Everything runs on the worker's event loop; the clock is injectable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter

log = logging.getLogger(__name__)

broker_resets = Counter(
    "core_broker_data_lost_total",
    "Times the worker found that the broker lost the service's data (changelogs, group, offsets)",
    ["evidence"],
)


@dataclass
class BrokerWatch:
    hold_seconds: float  # /health DOWN this long after evidence of lost data
    membership_grace: float  # a refused membership is tolerated this long (a rebalance's time)
    clock: Callable[[], float] = time.monotonic
    last_loss: tuple[float, str] | None = None  # (when, what was found)
    highest_generation: int = -1
    committed: dict[Any, int] = field(default_factory=dict)  # partition -> highest offset we committed
    commits_failing_since: float | None = None
    out_of_group_since: float | None = None
    joined_once: bool = False

    def lost_data(self, evidence: str, what: str) -> None:
        """The broker lost data: `/health` DOWN for `hold_seconds` from now (logged once an incident)."""
        if not self.holding():
            log.warning("the broker lost the service's data: %s", what, extra={"evidence": evidence})
        self.last_loss = (self.clock(), what)
        broker_resets.labels(evidence).inc()

    def holding(self) -> bool:
        return self.last_loss is not None and self.clock() - self.last_loss[0] <= self.hold_seconds

    def on_assignment(self, generation: int) -> None:
        """A rebalance handed this member an assignment of `generation`."""
        if generation < 0:
            return
        if generation < self.highest_generation:
            self.lost_data(
                "generation",
                f"the consumer group went back from generation {self.highest_generation} to {generation}",
            )
            self.highest_generation = generation  # the new group's numbering
        self.highest_generation = max(generation, self.highest_generation)
        self.joined_once = True
        self.out_of_group_since = None

    def on_commit(self, offsets: Mapping[Any, int], committed: bool) -> None:
        if committed:
            self.commits_failing_since = None
            for tp, offset in offsets.items():
                self.committed[tp] = max(offset, self.committed.get(tp, offset))
        elif self.commits_failing_since is None:
            self.commits_failing_since = self.clock()

    def on_committed_read(self, committed: Mapping[Any, int | None]) -> None:
        """The group's committed offsets, read after an assignment: none may be below ours."""
        went_back = {
            tp: (ours, committed.get(tp))
            for tp, ours in self.committed.items()
            if tp in committed and (committed[tp] is None or committed[tp] < ours)  # type: ignore[operator]
        }
        if went_back:
            tp, (ours, now) = sorted(went_back.items(), key=lambda item: str(item[0]))[0]
            self.lost_data(
                "committed_offsets",
                f"committed offsets went back on {len(went_back)} partitions, e.g. {tp}: {ours} -> {now}",
            )
            for tp in went_back:
                del self.committed[tp]

    def on_membership(self, in_group: bool) -> None:
        """Sampled: whether the consumer holds a member id and generation of the group."""
        if in_group or not self.joined_once:
            self.out_of_group_since = None
        elif self.out_of_group_since is None:
            self.out_of_group_since = self.clock()

    def status(self) -> str:
        """'UP', or 'DOWN: ' and why."""
        now = self.clock()
        if self.last_loss is not None and self.holding():
            return f"DOWN: the broker lost data: {self.last_loss[1]}"
        for since, what in (
            (self.commits_failing_since, "offset commits refused"),
            (self.out_of_group_since, "the consumer is out of its group"),
        ):
            if since is not None and now - since > self.membership_grace:
                return f"DOWN: {what} for {now - since:.0f} s (member unknown to the broker)"
        return "UP"
