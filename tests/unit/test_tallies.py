"""Tallied counters and histograms export exactly what prometheus_client's own would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from core_app.tallies import TalliedCounter, TalliedHistogram

BUCKETS = (0.0005, 0.001, 0.01, 0.5, 1.0, 10.0)


def samples(registry: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_histogram_series_equal_prometheus_clients() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    tallied = TalliedHistogram("t_seconds", "doc", ["transport", "status"], BUCKETS, registry=ours)
    reference = Histogram("t_seconds", "doc", ["transport", "status"], buckets=BUCKETS, registry=theirs)
    observations = [0.0, 0.0005, 0.0007, 0.001, 0.2, 1.0, 3.0, 10.0, 11.0]
    for n, value in enumerate(observations):
        labels = ("rest", "200") if n % 3 else ("grpc", "NOT_FOUND")
        tallied.observe(labels, value)
        reference.labels(*labels).observe(value)
    assert samples(ours) == samples(theirs)
    assert ours.get_sample_value("t_seconds_count", {"transport": "rest", "status": "200"}) == 6
    assert ours.get_sample_value(
        "t_seconds_bucket", {"transport": "grpc", "status": "NOT_FOUND", "le": "0.001"}
    ) == pytest.approx(2)  # 0.0 and 0.001 (le: bounds include their own value)


def test_counter_children_start_at_zero_and_count() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    tallied = TalliedCounter("reads_total", "doc", "source", ("table", "redis"), registry=ours)
    reference = Counter("reads_total", "doc", ["source"], registry=theirs)
    reference.labels("table"), reference.labels("redis")
    for source in ("table", "table", "redis"):
        tallied.inc(source)
        reference.labels(source).inc()
    assert samples(ours) == samples(theirs)
    with pytest.raises(KeyError):
        tallied.inc("elsewhere")
