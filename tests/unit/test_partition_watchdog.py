"""The watchdog around the rules (core_app/watchdog.py), through a fake partition source, a fake
end-offset probe and a controlled clock: the probe for partitions not fetched lately (faust #629),
the checks for /ready, /health and /live, the gauges, the loop, and sampling a Faust consumer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition

from core_app.domain.partition_progress import PartitionSample, StallThresholds
from core_app.health_probe import DependencyProbe
from core_app.services.health import HealthService
from core_app.watchdog import CHECK, FaustPartitions, PartitionWatchdog, WatchdogCollector
from tests.unit.fakes import FakeHealthProbe, FakeReadiness

LIMITS = StallThresholds.of(ready_after=6, health_after=10)  # fetch stale after 3 s


@dataclass
class FakeSource:
    partitions: dict[tuple[str, int], PartitionSample] = field(default_factory=dict)
    in_recovery: bool = False
    fail: bool = False

    def set(self, topic: str, partition: int, end: int | None, committed: int, age: float | None) -> None:
        self.partitions[(topic, partition)] = PartitionSample(topic, partition, end, committed, age)

    def samples(self) -> list[PartitionSample]:
        if self.fail:
            raise RuntimeError("consumer mid-change")
        return list(self.partitions.values())

    def recovering(self) -> bool:
        return self.in_recovery

    def flow_state(self, topic: str, partition: int) -> str:
        return "fake consumer"


@dataclass
class FakeProbe:
    ends: dict[TopicPartition, int] = field(default_factory=dict)
    calls: list[list[TopicPartition]] = field(default_factory=list)
    closed: bool = False

    async def end_offsets(
        self, partitions: Iterable[TopicPartition], deadline: float = 30.0
    ) -> Mapping[TopicPartition, int | None]:
        asked = list(partitions)
        self.calls.append(asked)
        return {tp: self.ends[tp] for tp in asked if tp in self.ends}

    async def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watchdog(source: FakeSource, probe: FakeProbe | None = None) -> tuple[PartitionWatchdog, Clock]:
    clock = Clock()
    return PartitionWatchdog(source, LIMITS, probe, clock), clock


def test_a_stalled_partition_fails_ready_then_health_and_clears_when_it_commits() -> None:
    source = FakeSource()
    source.set("rfm.updated", 1, end=5, committed=4, age=0.1)
    source.set("rfm.updated", 2, end=0, committed=0, age=0.1)  # idle
    dog, clock = watchdog(source)
    assert dog.ready() and dog.health() == "UP"
    clock.now += 6
    assert not dog.ready() and dog.health() == "UP"
    clock.now += 4
    assert dog.health() == (
        "DOWN: stalled partitions: rfm.updated[1] lag 1, fetched, no commit, no progress for 10s"
    )
    source.set("rfm.updated", 1, end=5, committed=5, age=0.1)
    assert dog.ready() and dog.health() == "UP"


async def test_a_partition_never_fetched_gets_its_end_from_the_probe_and_stalls() -> None:
    """faust #629: assigned but never fetched, so no fetched end; the probe finds records waiting."""
    source = FakeSource()
    source.set("points.updated", 0, end=None, committed=7, age=None)
    tp = TopicPartition("points.updated", 0)
    probe = FakeProbe(ends={tp: 9})
    dog, clock = watchdog(source, probe)
    dog.observe()
    await dog.confirm_stale_ends()
    assert probe.calls == []  # not stale yet: the fetcher gets its chance first
    clock.now += 3
    dog.observe()
    await dog.confirm_stale_ends()
    assert probe.calls == [[tp]]
    assert dog.observe()[0].lag == 2
    clock.now += 10
    assert dog.health() == (
        "DOWN: stalled partitions: points.updated[0] lag 2, not fetched, no progress for 10s"
    )


async def test_the_probe_is_asked_at_most_once_per_staleness_period() -> None:
    source = FakeSource()
    source.set("points.updated", 0, end=3, committed=1, age=30.0)
    probe = FakeProbe()
    dog, clock = watchdog(source, probe)
    for _ in range(5):
        dog.observe()
        await dog.confirm_stale_ends()
        clock.now += 1
    assert len(probe.calls) == 2  # at t=0 and t=3


async def test_a_confirmed_end_never_lowers_a_fetched_one_and_goes_with_the_partition() -> None:
    source = FakeSource()
    source.set("points.updated", 0, end=8, committed=5, age=5.0)
    tp = TopicPartition("points.updated", 0)
    dog, _ = watchdog(source, FakeProbe(ends={tp: 6}))
    dog.observe()
    await dog.confirm_stale_ends()
    assert dog.observe()[0].lag == 3  # the fetched end 8, not the confirmed 6
    source.partitions.clear()
    assert dog.observe() == [] and dog.confirmed_ends == {}


async def test_a_failed_probe_leaves_the_end_unknown_and_nothing_stalls() -> None:
    source = FakeSource()
    source.set("points.updated", 0, end=None, committed=5, age=None)
    dog, clock = watchdog(source, FakeProbe())  # answers {} as the real one does on a KafkaError
    for _ in range(30):
        dog.observe()
        await dog.confirm_stale_ends()
        clock.now += 1
    assert dog.ready() and dog.observe()[0].lag is None


async def test_no_probe_while_the_tables_recover() -> None:
    source = FakeSource(in_recovery=True)
    source.set("rfm.updated", 0, end=None, committed=0, age=60.0)
    probe = FakeProbe()
    dog, _ = watchdog(source, probe)
    dog.observe()
    await dog.confirm_stale_ends()
    assert probe.calls == []


def test_recovery_drops_confirmed_ends_and_holds_the_clocks() -> None:
    source = FakeSource()
    source.set("rfm.updated", 0, end=9, committed=1, age=0.1)
    dog, clock = watchdog(source)
    dog.confirmed_ends[("rfm.updated", 0)] = 12
    source.in_recovery = True
    clock.now += 100
    [judged] = dog.observe()
    assert dog.confirmed_ends == {} and judged.seconds_since_progress == 0 and judged.lag == 8


def test_the_gauges_carry_topic_and_partition_and_a_scrape_never_raises() -> None:
    source = FakeSource()
    source.set("rfm.updated", 3, end=5, committed=2, age=0.1)
    source.set("rfm.updated", 0, end=0, committed=0, age=0.1)
    dog, clock = watchdog(source)
    dog.observe()
    clock.now += 7
    families = {family.name: family for family in WatchdogCollector(dog).collect()}
    stalled = {s.labels["partition"]: s.value for s in families["core_partition_stalled"].samples}
    since = {
        s.labels["partition"]: s.value for s in families["core_partition_seconds_since_progress"].samples
    }
    assert stalled == {"3": 1.0, "0": 0.0} and since == {"3": 7.0, "0": 0.0}
    assert {s.labels["topic"] for s in families["core_partition_stalled"].samples} == {"rfm.updated"}
    source.fail = True
    families = {family.name: family for family in WatchdogCollector(dog).collect()}
    assert families["core_partition_stalled"].samples == []


async def test_the_loop_survives_a_failing_tick_and_closes_the_probe_when_cancelled() -> None:
    source = FakeSource(fail=True)
    probe = FakeProbe()
    dog, _ = watchdog(source, probe)
    task = asyncio.create_task(dog.run())
    await asyncio.sleep(0.05)
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert probe.closed


async def test_live_answers_the_liveness_checks_only() -> None:
    probe = FakeHealthProbe()
    service = HealthService(probe, FakeReadiness())
    assert await service.live() == (True, {"status": "UP"})
    probe.checks["postgres"] = "DOWN: OperationalError"  # a shared dependency never fails liveness
    assert await service.live() == (True, {"status": "UP"})
    probe.liveness[CHECK] = "DOWN: stalled partitions: rfm.updated[1] lag 1"
    up, body = await service.live()
    assert not up and body == {
        "status": "DOWN",
        "checks": {CHECK: "DOWN: stalled partitions: rfm.updated[1] lag 1"},
        "down": [CHECK],
    }
    assert (await service.health())[1]["down"] == [CHECK, "postgres"]


def test_the_dependency_probe_reports_liveness_checks_without_io() -> None:
    probe = DependencyProbe(pool=None, redis=None, kafka_options={}, timeout=1)  # type: ignore[arg-type]
    assert probe.check_liveness().up
    probe.liveness_checks[CHECK] = lambda: "DOWN: stalled"
    assert probe.check_liveness().checks == {CHECK: "DOWN: stalled"}


def faust_app(fetched_ms: int | None) -> Any:
    """Just the parts of a running Faust app and its aiokafka consumer that FaustPartitions reads."""
    tps = [TopicPartition(t, 0) for t in ("rfm.updated", "core-customers-changelog", "core-__assignor")]
    state = SimpleNamespace(timestamp=fetched_ms)
    assignment = SimpleNamespace(state_value=lambda tp: state)
    subscriptions = SimpleNamespace(subscription=SimpleNamespace(assignment=assignment))
    aiokafka_consumer = SimpleNamespace(_fetcher=SimpleNamespace(_subscriptions=subscriptions))
    consumer = SimpleNamespace(
        assignment=lambda: set(tps),
        highwater=lambda tp: 12,
        _committed_offset={tps[0]: 10},
        _thread=SimpleNamespace(_ensure_consumer=lambda: aiokafka_consumer),
    )
    recovery = SimpleNamespace(in_recovery=False)
    tables = SimpleNamespace(changelog_topics={"core-customers-changelog"}, recovery=recovery)
    topics = SimpleNamespace(acks_enabled_for=lambda topic: topic != "core-__assignor")
    return SimpleNamespace(consumer=consumer, tables=tables, topics=topics)


def test_faust_partitions_are_the_acked_non_changelog_ones_with_their_fetch_age() -> None:
    source = FaustPartitions(faust_app(fetched_ms=100_000), wall_clock=lambda: 102.5)
    assert source.samples() == [PartitionSample("rfm.updated", 0, 12, 10, 2.5)]
    assert not source.recovering()
    never = FaustPartitions(faust_app(fetched_ms=None))
    assert never.samples()[0].fetch_age is None


def test_faust_partitions_before_the_consumer_exists_are_none() -> None:
    assert FaustPartitions(SimpleNamespace()).samples() == []
