"""The stalled-partition watchdog (docs/decisions.md D225-D228; the rules: core_app/domain/
partition_progress.py).

It samples, once a second and whenever /ready, /health, /live or /metrics asks, every partition this
worker's agents consume and commit (changelogs are the recovery's business), from Faust's and
aiokafka's in-memory state: no I/O. A partition not fetched lately has a stale fetched end (faust
#629), so its end is confirmed by a group-less probe instead (core_app/end_offsets.py: ListOffsets
under-reports on Tansu, D110). It exports `core_partition_stalled{topic,partition}` and
`core_partition_seconds_since_progress{topic,partition}` at scrape time, adds the readiness check
`partitions_progressing` (false past PARTITION_STALL_READY_SECONDS) and the liveness check of the
same name to /health and /live (DOWN past PARTITION_STALL_HEALTH_SECONDS).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from aiokafka import TopicPartition
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from core_app.domain.partition_progress import (
    PartitionProgress,
    PartitionSample,
    ProgressTracker,
    StallThresholds,
    all_progressing,
    health_state,
)
from core_app.end_offsets import EndOffsetProbe
from core_app.kafka_security import client_options

log = logging.getLogger(__name__)

CHECK = "partitions_progressing"
TICK_SECONDS = 1.0
PROBE_DEADLINE_SECONDS = 5.0


class PartitionSource(Protocol):
    def samples(self) -> list[PartitionSample]: ...

    def recovering(self) -> bool: ...

    def flow_state(self, topic: str, partition: int) -> str: ...


class EndOffsets(Protocol):
    async def end_offsets(
        self, partitions: Iterable[TopicPartition], deadline: float = ...
    ) -> Mapping[TopicPartition, int | None]: ...

    async def close(self) -> None: ...


class FaustPartitions:
    """The PartitionSource of a running Faust app: its assigned, acked, non-changelog partitions."""

    def __init__(self, app: Any, wall_clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.wall_clock = wall_clock

    def recovering(self) -> bool:
        return bool(self.app.tables.recovery.in_recovery)

    def samples(self) -> list[PartitionSample]:
        try:
            consumer = self.app.consumer
            assigned = sorted(consumer.assignment())
        except Exception:  # not started yet, or between rebalances
            return []
        changelogs = self.app.tables.changelog_topics
        acked = self.app.topics.acks_enabled_for
        fetched_at = self._fetch_times(consumer)
        now = self.wall_clock()
        samples = []
        for tp in assigned:
            if tp.topic in changelogs or not acked(tp.topic):
                continue
            try:
                end = consumer.highwater(tp)  # from the last fetch response (what consumer lag uses)
            except Exception:
                end = None
            fetched = fetched_at(tp)
            age = None if fetched is None else max(0.0, now - fetched)
            samples.append(
                PartitionSample(tp.topic, tp.partition, end, consumer._committed_offset.get(tp), age)
            )
        return samples

    def flow_state(self, topic: str, partition: int) -> str:
        """Why the consumer may not be fetching a partition, for the stall log: Faust's flow sets
        (active, paused, buffered: its stream queue was full) and aiokafka's own state."""
        try:
            consumer = self.app.consumer
            tp = next(tp for tp in consumer.assignment() if tp == (topic, partition))
            fetcher = consumer._thread._ensure_consumer()._fetcher
            state = fetcher._subscriptions.subscription.assignment.state_value(
                TopicPartition(topic, partition)
            )
            return (
                f"flow_active={consumer.flow_active} active={tp in consumer._get_active_partitions()} "
                f"paused={tp in consumer._paused_partitions} buffered={tp in consumer._buffered_partitions} "
                f"kafka_paused={getattr(state, 'paused', None)} position={getattr(state, 'position', None)} "
                f"read_offset={consumer._read_offset.get(tp)} "
                f"acked_pending={len(consumer._acked.get(tp) or ())} "
                f"unacked={sum(1 for m in consumer._unacked_messages if m.tp == tp)} "
                f"queues={[ch.queue.qsize() for ch in self.app.topics._topic_name_index.get(topic, ())]}"
            )
        except Exception as exc:  # diagnostics only: never fail the watchdog
            return f"unknown ({exc!r})"

    @staticmethod
    def _fetch_times(consumer: Any) -> Callable[[Any], float | None]:
        """When aiokafka last took a fetch response for a partition (wall-clock seconds), or None."""
        try:
            assignment = consumer._thread._ensure_consumer()._fetcher._subscriptions.subscription.assignment
        except Exception:
            assignment = None

        def fetched_at(tp: Any) -> float | None:
            state = assignment.state_value(TopicPartition(tp.topic, tp.partition)) if assignment else None
            stamp = getattr(state, "timestamp", None)
            return stamp / 1000 if stamp else None

        return fetched_at


class PartitionWatchdog:
    def __init__(
        self,
        source: PartitionSource,
        thresholds: StallThresholds,
        probe: EndOffsets | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.thresholds = thresholds
        self.probe = probe
        self.clock = clock
        self.tracker = ProgressTracker(thresholds)
        self.confirmed_ends: dict[tuple[str, int], int] = {}
        self._last_probe = -math.inf
        self.last: list[PartitionProgress] = []

    def observe(self) -> list[PartitionProgress]:
        recovering = self.source.recovering()
        if recovering:  # a reassignment may follow a recreated topic: confirmed ends start over
            self.confirmed_ends.clear()
        samples = [self._with_confirmed_end(sample) for sample in self.source.samples()]
        assigned = {(sample.topic, sample.partition) for sample in samples}
        self.confirmed_ends = {k: v for k, v in self.confirmed_ends.items() if k in assigned}
        was_stalled = {(p.topic, p.partition) for p in self.last if p.stalled}
        self.last = self.tracker.observe(self.clock(), samples, recovering)
        for progress in self.last:
            if progress.stalled and (progress.topic, progress.partition) not in was_stalled:
                state = self.source.flow_state(progress.topic, progress.partition)
                log.warning("partition stalled: %s; consumer: %s", progress.describe(), state)
        return self.last

    def _with_confirmed_end(self, sample: PartitionSample) -> PartitionSample:
        confirmed = self.confirmed_ends.get((sample.topic, sample.partition))
        if confirmed is None:
            return sample
        # Both are ends seen at some moment, so the larger is the later one: lag is never overstated.
        end = confirmed if sample.end_offset is None else max(confirmed, sample.end_offset)
        return PartitionSample(sample.topic, sample.partition, end, sample.committed, sample.fetch_age)

    async def confirm_stale_ends(self) -> None:
        """Ask the probe for the end of each partition not fetched lately (at most every
        fetch_stale_after seconds)."""
        stale = [TopicPartition(p.topic, p.partition) for p in self.last if p.fetch_stale]
        now = self.clock()
        if not stale or self.probe is None or now - self._last_probe < self.thresholds.fetch_stale_after:
            return
        if self.source.recovering():
            return
        self._last_probe = now
        ends = await self.probe.end_offsets(stale, PROBE_DEADLINE_SECONDS)
        for tp, end in ends.items():
            if end is not None:
                key = (tp.topic, tp.partition)
                self.confirmed_ends[key] = max(end, self.confirmed_ends.get(key, end))

    def ready(self) -> bool:
        return all_progressing(self.observe())

    def health(self) -> str:
        return health_state(self.observe())

    async def run(self) -> None:
        """Samples every TICK_SECONDS until cancelled; never raises (it runs beside the app)."""
        try:
            while True:
                try:
                    self.observe()
                    await self.confirm_stale_ends()
                except Exception:
                    log.exception("partition watchdog tick failed")
                await asyncio.sleep(TICK_SECONDS)
        finally:
            if self.probe is not None:
                await self.probe.close()


class WatchdogCollector(Collector):
    """The watchdog's gauges, judged when /metrics is scraped (like core_app/consumer_metrics.py)."""

    def __init__(self, watchdog: PartitionWatchdog) -> None:
        self.watchdog = watchdog

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stalled = GaugeMetricFamily(
            "core_partition_stalled",
            "1 when the partition has uncommitted records and no progress for PARTITION_STALL_READY_SECONDS",
            labels=["topic", "partition"],
        )
        since = GaugeMetricFamily(
            "core_partition_seconds_since_progress",
            "Seconds since the partition last caught up or advanced its committed offset",
            labels=["topic", "partition"],
        )
        try:
            judged = self.watchdog.observe()
        except Exception:  # a scrape must not fail because the consumer is mid-change
            log.exception("partition watchdog sample failed")
            judged = []
        for progress in judged:
            labels = [progress.topic, str(progress.partition)]
            stalled.add_metric(labels, float(progress.stalled))
            since.add_metric(labels, progress.seconds_since_progress)
        yield from (stalled, since)


_registered: list[WatchdogCollector] = []


def install(app: Any) -> PartitionWatchdog:
    """Wire the watchdog into a started app: its checks, its gauges (once per process), its loop."""
    settings = app.core_settings
    thresholds = StallThresholds.of(
        settings.partition_stall_ready_seconds, settings.partition_stall_health_seconds
    )
    probe = EndOffsetProbe(client_options(settings), client_id="core-watchdog")
    watchdog = PartitionWatchdog(FaustPartitions(app), thresholds, probe)
    runtime = app.components.runtime
    runtime.ready_checks[CHECK] = watchdog.ready
    runtime.health.liveness_checks[CHECK] = watchdog.health
    if _registered:
        _registered[0].watchdog = watchdog
    else:
        _registered.append(WatchdogCollector(watchdog))
        REGISTRY.register(_registered[0])
    app.add_future(watchdog.run())
    return watchdog
