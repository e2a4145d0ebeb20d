"""Scrape-time gauges of the worker's own consumer: lag and committed offset per partition, and
readiness. Read from Faust's in-memory state when /metrics is scraped (on the event loop, like the
rest of the registry), so nothing polls between scrapes. The alert rules (deploy/prometheus/rules)
use them for "consumer lag growing", "stalled partition" and "worker not ready"."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

log = logging.getLogger(__name__)


class ConsumerCollector(Collector):
    def __init__(self, app: Any) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "core_consumer_lag",
            "Records in the partition not yet read by this worker (highwater - next offset)",
            labels=["topic", "partition"],
        )
        committed = GaugeMetricFamily(
            "core_consumer_committed_offset",
            "Last offset this worker committed for the partition",
            labels=["topic", "partition"],
        )
        for tp, lag_value, committed_value in self._partitions():
            labels = [tp.topic, str(tp.partition)]
            lag.add_metric(labels, lag_value)
            if committed_value is not None:
                committed.add_metric(labels, committed_value)
        ready = GaugeMetricFamily(
            "core_worker_ready",
            "1 when the last /ready probe found migrations applied and the tables recovered",
        )
        ready.add_metric([], float(self._ready()))
        yield from (lag, committed, ready)

    def _ready(self) -> bool:
        components = getattr(self.app, "components", None)
        if components is None or not components.is_open:
            return False
        runtime = components.runtime
        return runtime.migrations_applied and runtime.tables_recovered

    def _partitions(self) -> Iterator[tuple[Any, float, int | None]]:
        try:
            consumer = self.app.consumer
            assigned = sorted(consumer.assignment())
        except Exception:  # not started yet, or between rebalances
            return
        for tp in assigned:
            try:
                highwater = consumer.highwater(tp)
            except Exception:
                continue
            if highwater is None:
                continue
            read = consumer._read_offset.get(tp)  # Faust's last offset handed to a stream
            next_offset = 0 if read is None else read + 1
            yield tp, float(max(0, highwater - next_offset)), consumer._committed_offset.get(tp)


_registered: list[ConsumerCollector] = []


def register(app: Any) -> None:
    """Once per process (the registry refuses a second collector with the same names)."""
    if not _registered:
        collector = ConsumerCollector(app)
        REGISTRY.register(collector)
        _registered.append(collector)
