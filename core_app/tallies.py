"""Prometheus series counted on every request, as plain tallies exported when scraped.

prometheus_client's Counter and Histogram take a lock and check their state on each increment
(about 2 us per read for the read counter and the latency histogram together, 3-4 % of a table
read's worker CPU). These keep the counts in dicts and lists, and a custom collector (the
library's documented `Collector` interface) turns them into the same series on scrape: the names,
labels, buckets, `_count` and `_sum` are those the Counter and Histogram would have exported.
Every increment and every scrape runs on the worker's event loop thread, so nothing is shared
across threads.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import INF, floatToGoString


class TalliedCounter(Collector):
    """A counter with one label, its children known up front (each shows at 0 from the start)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        label: str,
        values: Sequence[str],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.name = name.removesuffix("_total")
        self.documentation = documentation
        self.label = label
        self.counts = dict.fromkeys(values, 0)
        registry.register(self)

    def inc(self, value: str) -> None:
        self.counts[value] += 1  # a KeyError for an unknown label value: a bug, not a new series

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, count in self.counts.items():
            family.add_metric([value], count)
        yield family


class TalliedHistogram(Collector):
    """A labelled histogram; each series is its per-bucket counts (the last is +Inf) and the sum."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = list(labels)
        self.bounds = sorted(buckets)
        self.series: dict[tuple[str, ...], list[float]] = {}
        registry.register(self)

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = [0] * (len(self.bounds) + 2)
        series[bisect_left(self.bounds, value)] += 1  # the first bucket whose bound is >= value
        series[-1] += value

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, series in self.series.items():
            cumulative, buckets = 0.0, []
            for bound, count in zip([*self.bounds, INF], series[:-1], strict=True):
                cumulative += count
                buckets.append((floatToGoString(bound), cumulative))
            family.add_metric(list(labels), buckets, sum_value=series[-1])
        yield family
