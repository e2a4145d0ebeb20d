"""bench/capacity_model.py: the arithmetic from measured inputs to a sizing (docs/capacity.md)."""

from __future__ import annotations

import pytest

from bench.capacity_model import (
    Inputs,
    Pod,
    Scale,
    derive,
    nice_partition_count,
    partitions_per_worker,
    size_for,
)


def inputs(**changes: float) -> Inputs:
    base = {
        "rocksdb_bytes": 300.0,
        "changelog_bytes": 670.0,
        "redis_bytes": 600.0,
        "postgres_bytes": 1600.0,
        "worker_us_per_event": 100.0,
        "sink_us_per_event": 20.0,
        "worker_us_per_read": 90.0,
        "recovery_seconds_per_gib": 10.0,
    }
    return Inputs(**(base | changes))  # type: ignore[arg-type]


def test_the_plans_scale() -> None:
    plan = Scale()
    assert plan.customers == 250_000_000
    assert plan.events_per_second == pytest.approx(5_000 * 10_000 / 3600 * 2)
    assert plan.reads_per_second == 50_000
    assert plan.times(10).customers == 2_500_000_000


def test_a_pod_fits_the_partitions_its_rocksdb_memory_allows() -> None:
    # 3 tables x (2 x 4 MiB write buffers + 4 MiB block cache) x (active + 1 standby) = 72 MiB
    assert partitions_per_worker(Pod()) == (512 - 200) // 72
    assert partitions_per_worker(Pod(standbys=0)) == (512 - 200) // 36


def test_cpu_binds_when_recovery_is_fast() -> None:
    sizing = size_for(Scale(), inputs(recovery_seconds_per_gib=1.0))
    cpu_us = Scale().events_per_second * 100 + 50_000 * 90
    assert sizing.workers_for_cpu == -(-cpu_us // (0.5 * 0.6 * 1e6))
    assert sizing.binds == "CPU" and sizing.workers == sizing.workers_for_cpu
    assert sizing.partitions >= sizing.workers and sizing.partitions == nice_partition_count(sizing.workers)


def test_recovery_binds_when_a_workers_share_cannot_be_rebuilt_in_time() -> None:
    sizing = size_for(Scale(), inputs(recovery_seconds_per_gib=900.0))
    changelog_gib = 250_000_000 * 670 / 1024**3
    assert sizing.workers_for_recovery == -(-changelog_gib // (300 / 900))
    assert sizing.binds == "recovery time" and sizing.workers == sizing.workers_for_recovery
    # the rate at which a worker's CPU-sized share could be rebuilt within the target
    assert sizing.recovery_seconds_per_gib_for_cpu == pytest.approx(
        300 / (changelog_gib / sizing.workers_for_cpu)
    )
    assert sizing.partitions >= sizing.workers


def test_storage_grows_with_customers() -> None:
    plan, ten_times = derive(inputs())
    assert ten_times.postgres_gib == pytest.approx(10 * plan.postgres_gib)
    assert plan.postgres_gib == pytest.approx(250_000_000 * 1600 / 1024**3)
    assert plan.redis_gib == pytest.approx(250_000_000 * 0.2 * 600 / 1024**3)


def test_partition_counts_have_many_divisors() -> None:
    assert [nice_partition_count(n) for n in (1, 12, 13, 100, 361, 6000)] == [12, 12, 24, 120, 720, 6480]


def test_the_model_reads_its_inputs_from_recorded_runs() -> None:
    """`bench.capacity --storage-from/--recovery-from` (docs/capacity.md): the recorded output lines."""
    from pathlib import Path

    from bench.capacity import recorded_inputs

    results = Path(__file__).resolve().parents[2] / "bench" / "results"
    storage = recorded_inputs(results / "2026-12-07-issue21-capacity.json")
    assert [run["customers"] for run in storage["storage"]] == [1_000_000, 5_000_000]
    assert storage["redis_bytes_per_entry"] == 597
    assert storage["postgres"]["customers"] == 1_000_000
    recovery = recorded_inputs(results / "2026-12-07-issue21-recovery-1m.json")["recovery"]
    assert recovery["mode"] == "batched" and recovery["keys_held"] == recovery["customers"] == 1_000_000
    assert recovery["seconds_per_gib"] == pytest.approx(17.98, abs=0.01)
