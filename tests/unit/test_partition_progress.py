"""The stalled-partition rules (core_app/domain/partition_progress.py), on a controlled clock: what
stalls (lag and no commit), what never does (idle, slow but steady, recovering), and when."""

from __future__ import annotations

import pytest

from core_app.domain.partition_progress import (
    PartitionProgress,
    PartitionSample,
    ProgressTracker,
    StallThresholds,
    all_progressing,
    health_state,
)

LIMITS = StallThresholds.of(ready_after=60, health_after=300)


def sample(
    end: int | None, committed: int | None, fetch_age: float | None = 0.5, partition: int = 0
) -> PartitionSample:
    return PartitionSample("rfm.updated", partition, end, committed, fetch_age)


def run(tracker: ProgressTracker, steps: list[tuple[float, PartitionSample]]) -> list[PartitionProgress]:
    return [tracker.observe(now, [s])[0] for now, s in steps]


def test_thresholds_keep_health_after_ready_and_bound_the_fetch_staleness() -> None:
    assert StallThresholds.of(60, 300) == StallThresholds(60, 300, 10)
    assert StallThresholds.of(6, 3) == StallThresholds(6, 6, 3)  # health never before ready
    with pytest.raises(ValueError, match="ready_after"):
        StallThresholds.of(0, 10)


def test_a_partition_with_lag_and_no_commit_stalls_then_goes_down() -> None:
    tracker = ProgressTracker(LIMITS)
    judged = run(tracker, [(t, sample(end=11, committed=10)) for t in (0, 30, 59, 60, 299, 300)])
    assert [p.seconds_since_progress for p in judged] == [0, 30, 59, 60, 299, 300]
    assert [p.stalled for p in judged] == [False, False, False, True, True, True]
    assert [p.down for p in judged] == [False, False, False, False, False, True]
    assert judged[-1].lag == 1 and not judged[-1].fetch_stale
    assert judged[-1].describe() == "rfm.updated[0] lag 1, fetched, no commit, no progress for 300s"


def test_an_idle_partition_with_lag_0_never_stalls() -> None:
    tracker = ProgressTracker(LIMITS)
    judged = run(tracker, [(t, sample(end=10, committed=10)) for t in range(0, 3600, 15)])
    assert not any(p.stalled or p.down for p in judged)
    assert {p.seconds_since_progress for p in judged} == {0}
    assert {p.lag for p in judged} == {0}


def test_an_empty_partition_never_committed_is_idle() -> None:
    tracker = ProgressTracker(LIMITS)
    judged = run(tracker, [(t, sample(end=0, committed=None)) for t in range(0, 600, 30)])
    assert not any(p.stalled for p in judged)


def test_records_in_a_partition_never_committed_count_from_offset_0() -> None:
    tracker = ProgressTracker(LIMITS)
    judged = run(tracker, [(0, sample(end=3, committed=None)), (61, sample(end=3, committed=None))])
    assert judged[-1].lag == 3 and judged[-1].stalled


def test_slow_but_steady_commits_never_stall_even_with_lag_all_along() -> None:
    """Commits every 2.8 s (Faust's commit interval), ten records behind all the time."""
    tracker = ProgressTracker(StallThresholds.of(ready_after=5, health_after=8))
    steps = []
    for tick in range(200):  # a sample every 0.5 s for 100 s
        now = tick * 0.5
        committed = int(now // 2.8) * 7
        steps.append((now, sample(end=committed + 10, committed=committed)))
    judged = run(tracker, steps)
    assert all(p.lag == 10 for p in judged)
    assert max(p.seconds_since_progress for p in judged) < 3
    assert not any(p.stalled for p in judged)


def test_progress_is_credited_at_the_sample_that_sees_it_never_earlier() -> None:
    """Between two samples a record may have arrived just now: the stall counts from this sample."""
    tracker = ProgressTracker(LIMITS)
    judged = run(tracker, [(0, sample(10, 10)), (1000, sample(11, 10)), (1059, sample(11, 10))])
    assert [p.seconds_since_progress for p in judged] == [0, 0, 59]
    assert not judged[-1].stalled


def test_a_commit_that_moves_up_is_progress_but_one_that_moves_back_is_not() -> None:
    tracker = ProgressTracker(LIMITS)
    judged = run(
        tracker,
        [(0, sample(20, 10)), (50, sample(20, 12)), (100, sample(20, 11)), (111, sample(20, 11))],
    )
    assert [p.seconds_since_progress for p in judged] == [0, 0, 50, 61]
    assert judged[-1].stalled


def test_clocks_are_held_while_the_tables_recover() -> None:
    tracker = ProgressTracker(LIMITS)
    for now in range(0, 1000, 10):
        judged = tracker.observe(now, [sample(50, 10, fetch_age=None)], recovering=True)
        assert judged[0].seconds_since_progress == 0 and not judged[0].fetch_stale
    after = tracker.observe(995, [sample(50, 10, fetch_age=None)])[0]  # last recovering sample: 990
    assert after.seconds_since_progress == 5 and not after.fetch_stale  # its first fetch is due now
    assert tracker.observe(1000, [sample(50, 10, fetch_age=None)])[0].fetch_stale


def test_a_revoked_partition_is_forgotten_and_starts_over_when_assigned_again() -> None:
    tracker = ProgressTracker(LIMITS)
    tracker.observe(0, [sample(11, 10)])
    assert tracker.observe(50, [sample(11, 10)])[0].seconds_since_progress == 50
    assert tracker.observe(51, []) == []
    assert tracker.observe(100, [sample(11, 10)])[0].seconds_since_progress == 0


def test_an_unknown_end_is_not_judged() -> None:
    tracker = ProgressTracker(LIMITS)
    judged = run(tracker, [(t, sample(None, 10, fetch_age=None)) for t in range(0, 600, 30)])
    assert not any(p.stalled for p in judged)
    assert {p.lag for p in judged} == {None}


def test_a_partition_not_fetched_lately_is_fetch_stale() -> None:
    tracker = ProgressTracker(LIMITS)  # stale after 10 s
    never = run(tracker, [(0, sample(None, 5, fetch_age=None)), (9, sample(None, 5, None))])
    assert [p.fetch_stale for p in never] == [False, False]
    assert tracker.observe(10, [sample(None, 5, fetch_age=None)])[0].fetch_stale
    assert not tracker.observe(11, [sample(6, 5, fetch_age=9.9)])[0].fetch_stale
    late = tracker.observe(80, [sample(6, 5, fetch_age=10)])[0]
    assert late.fetch_stale and late.stalled
    assert late.describe() == "rfm.updated[0] lag 1, not fetched, no progress for 69s"


def test_ready_and_health_name_the_longest_stalled_partitions_first() -> None:
    def progress(partition: int, since: float, ready_only: bool = False) -> PartitionProgress:
        return PartitionProgress("points.updated", partition, 2, since, False, True, not ready_only)

    assert all_progressing([]) and health_state([]) == "UP"
    only_ready = [progress(0, 100, ready_only=True)]
    assert not all_progressing(only_ready) and health_state(only_ready) == "UP"
    many = [progress(p, 300 + p) for p in range(5)]
    state = health_state(many)
    assert state.startswith("DOWN: stalled partitions: points.updated[4] lag 2")
    assert "points.updated[2]" in state and "points.updated[1]" not in state
    assert state.endswith("(+2 more)")
