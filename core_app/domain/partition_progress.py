"""Is every consumed partition making progress? The stalled-partition watchdog's rules (D225).

A partition is judged from samples of it: its end offset (from a recent fetch, or confirmed by a
probe when it has not been fetched lately), its committed offset and the age of its last fetch. Its
lag is end - committed: records not yet committed, so events handed to an agent that never finishes
them still count (a lag by read offset would show 0 there). It makes progress at a sample where its
lag is 0 (caught up: an idle partition never stalls), its committed offset moved up since the
previous sample, its lag is unknown (nothing to judge by), or the worker is restoring its tables
(slow on purpose, and reported by /ready's own check). Progress is credited at the sample that sees
it, and lag that appears between two samples counts from the later one, so however far apart the
samples are, the time since progress is never overstated.

The failure modes this is shaped by: faust-streaming #175 (the stream stops processing: records are
fetched, never committed), #629 (a partition that is never fetched: its fetched end is stale or
missing, hence the probe), robinhood #402 (a rebalance waiting in `wait_empty` for an agent that
never finishes: the worker is not recovering, so its clocks keep running through the rebalance).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

FETCH_STALE_CAP = 10.0  # seconds: a fetch this old means the fetched end may be stale
HEALTH_REASONS_SHOWN = 3


@dataclass(frozen=True)
class StallThresholds:
    ready_after: float  # lag and no progress this long: stalled, /ready fails
    health_after: float  # this long: /health and /live fail (never before ready_after)
    fetch_stale_after: float  # a last fetch older than this: the fetched end may be stale

    @classmethod
    def of(cls, ready_after: float, health_after: float) -> StallThresholds:
        if ready_after <= 0:
            raise ValueError("ready_after must be positive")
        return cls(ready_after, max(health_after, ready_after), min(FETCH_STALE_CAP, ready_after / 2))


@dataclass(frozen=True)
class PartitionSample:
    topic: str
    partition: int
    end_offset: int | None  # the next offset to be written, as last known; None: unknown
    committed: int | None  # the next offset to consume, as committed; None: nothing committed yet
    fetch_age: float | None  # seconds since its last fetch response; None: none since assigned


@dataclass(frozen=True)
class PartitionProgress:
    topic: str
    partition: int
    lag: int | None
    seconds_since_progress: float
    fetch_stale: bool  # not fetched lately: its end needs confirming, and that is why it stalls
    stalled: bool  # lag and no progress for ready_after
    down: bool  # lag and no progress for health_after

    def describe(self) -> str:
        cause = "not fetched" if self.fetch_stale else "fetched, no commit"
        return (
            f"{self.topic}[{self.partition}] lag {self.lag}, {cause}, "
            f"no progress for {self.seconds_since_progress:.0f}s"
        )


@dataclass
class _Tracked:
    committed: int
    progress_at: float
    seen_at: float
    lagged: bool = False  # at the previous sample


class ProgressTracker:
    """Remembers, per assigned partition, its last committed offset and when it last progressed."""

    def __init__(self, thresholds: StallThresholds) -> None:
        self.thresholds = thresholds
        self._tracked: dict[tuple[str, int], _Tracked] = {}

    def observe(
        self, now: float, samples: Iterable[PartitionSample], recovering: bool = False
    ) -> list[PartitionProgress]:
        """Each sampled partition judged at `now`; partitions no longer sampled are forgotten."""
        tracked: dict[tuple[str, int], _Tracked] = {}
        judged = []
        for sample in samples:
            key = (sample.topic, sample.partition)
            committed = sample.committed or 0
            state = self._tracked.get(key) or _Tracked(committed, now, now)
            lag = None if sample.end_offset is None else max(0, sample.end_offset - committed)
            # Lag that appeared since the last sample (which had none) began no earlier than now.
            if recovering or not lag or not state.lagged or committed > state.committed:
                state.progress_at = now
            if recovering:  # its partitions are paused meanwhile: no fetch is due
                state.seen_at = now
            state.committed = committed
            state.lagged = bool(lag)
            tracked[key] = state
            judged.append(self._judge(now, sample, state, lag))
        self._tracked = tracked
        return judged

    def _judge(
        self, now: float, sample: PartitionSample, state: _Tracked, lag: int | None
    ) -> PartitionProgress:
        limits = self.thresholds
        since = now - state.progress_at
        if sample.fetch_age is None:
            fetch_stale = now - state.seen_at >= limits.fetch_stale_after
        else:
            fetch_stale = sample.fetch_age >= limits.fetch_stale_after
        lagging = bool(lag)
        return PartitionProgress(
            topic=sample.topic,
            partition=sample.partition,
            lag=lag,
            seconds_since_progress=since,
            fetch_stale=fetch_stale,
            stalled=lagging and since >= limits.ready_after,
            down=lagging and since >= limits.health_after,
        )


def all_progressing(judged: Sequence[PartitionProgress]) -> bool:
    """For /ready: no partition is stalled."""
    return not any(progress.stalled for progress in judged)


def health_state(judged: Sequence[PartitionProgress]) -> str:
    """For /health and /live: "UP", or "DOWN: " and the partitions stalled past health_after."""
    down = sorted((progress for progress in judged if progress.down), key=lambda p: -p.seconds_since_progress)
    if not down:
        return "UP"
    shown = "; ".join(progress.describe() for progress in down[:HEALTH_REASONS_SHOWN])
    more = f" (+{len(down) - HEALTH_REASONS_SHOWN} more)" if len(down) > HEALTH_REASONS_SHOWN else ""
    return f"DOWN: stalled partitions: {shown}{more}"
