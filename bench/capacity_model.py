"""From measured inputs (bench/capacity.py, the ingest and read benches) to a sizing for the plan's
scale and for ten times it: partitions, workers, PostgreSQL, Redis, Kafka, and what binds first.
Pure arithmetic; docs/capacity.md explains each assumption. tests/unit/test_capacity_model.py checks it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class Scale:
    """The load to size for (the service plan: 5,000 merchants, Shopify Plus shops)."""

    merchants: int = 5_000
    customers_per_merchant: int = 50_000
    orders_per_hour_per_merchant: int = 10_000  # every shop at the plan's Plus peak: an upper bound
    events_per_order: float = 2.0  # rfm.updated (RFM Analytics) and points.updated (Points)
    read_share_of_limit: float = 0.1  # every merchant at 10 % of its 100 req/s API limit at once
    api_limit_per_merchant: int = 100
    cached_share: float = 0.2  # customers read within the cache's 24 h TTL

    @property
    def customers(self) -> int:
        return self.merchants * self.customers_per_merchant

    @property
    def events_per_second(self) -> float:
        return self.merchants * self.orders_per_hour_per_merchant / 3600 * self.events_per_order

    @property
    def reads_per_second(self) -> float:
        return self.merchants * self.api_limit_per_merchant * self.read_share_of_limit

    def times(self, factor: int) -> Scale:
        return Scale(
            self.merchants * factor,
            self.customers_per_merchant,
            self.orders_per_hour_per_merchant,
            self.events_per_order,
            self.read_share_of_limit,
            self.api_limit_per_merchant,
            self.cached_share,
        )


@dataclass(frozen=True)
class Pod:
    """The plan's worker pod, and how full it may run."""

    cpu: float = 0.5
    memory_mib: int = 512
    utilisation: float = 0.6  # headroom for rebalances, GC and bursts
    base_rss_mib: int = 200  # a worker's RSS with no partition assigned (Python, Faust, clients)
    tables: int = 3  # RocksDB instances per partition (customers, settings, import logs)
    write_buffer_mib: int = 4  # RocksDB, per instance: two of these and one block cache
    block_cache_mib: int = 4
    recovery_target_seconds: float = 300.0  # a worker's whole state rebuilt from the changelogs
    standbys: int = 1  # TABLE_STANDBY_REPLICAS: each partition's tables are kept twice


@dataclass(frozen=True)
class Inputs:
    rocksdb_bytes: float  # per customer
    changelog_bytes: float  # per customer, one record (what a compacted changelog keeps)
    redis_bytes: float  # per cached customer
    postgres_bytes: float  # per customer: table, TOAST and indexes
    worker_us_per_event: float
    sink_us_per_event: float
    worker_us_per_read: float
    recovery_seconds_per_gib: float
    source_event_bytes: float = 125.0  # an rfm.updated record (bench/ingest.py)
    sources: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_measured(cls, measured: dict[str, Any]) -> Inputs:
        largest = max(measured["storage"], key=lambda result: result["customers"])
        postgres = measured["postgres"]
        return cls(
            rocksdb_bytes=largest["rocksdb_bytes_per_customer"],
            changelog_bytes=largest["changelog_bytes_per_customer"],
            redis_bytes=measured["redis_bytes_per_entry"],
            postgres_bytes=postgres["table_bytes_per_customer"] + postgres["index_bytes_per_customer"],
            worker_us_per_event=measured["cpu"]["worker_us_per_event"],
            sink_us_per_event=measured["cpu"]["sink_us_per_event"],
            worker_us_per_read=measured["cpu"]["worker_us_per_read"],
            recovery_seconds_per_gib=measured.get("recovery", {}).get("seconds_per_gib", math.nan),
            sources=measured.get("cpu", {}).get("sources", {}),
        )


@dataclass(frozen=True)
class Sizing:
    scale: Scale
    workers_for_cpu: int
    partitions_per_worker_by_memory: int
    workers_for_recovery: int
    partitions: int
    workers: int
    sink_processes: int
    binds: str
    postgres_gib: float
    redis_gib: float
    rocksdb_gib_per_worker: float
    changelog_gib: float
    kafka_mib_per_second: float


def partitions_per_worker(pod: Pod) -> int:
    """How many partitions' RocksDB memory fits in a pod beside the worker's own RSS."""
    per_partition = pod.tables * (2 * pod.write_buffer_mib + pod.block_cache_mib) * (1 + pod.standbys)
    return max(1, (pod.memory_mib - pod.base_rss_mib) // per_partition)


def size_for(scale: Scale, inputs: Inputs, pod: Pod = Pod()) -> Sizing:
    cpu_us = (
        scale.events_per_second * inputs.worker_us_per_event
        + scale.reads_per_second * inputs.worker_us_per_read
    )
    workers_for_cpu = math.ceil(cpu_us / (pod.cpu * pod.utilisation * 1e6))
    changelog_gib = scale.customers * inputs.changelog_bytes / GIB
    # A worker rebuilds all its partitions through one consumer: its whole share must fit the target.
    gib_per_worker = pod.recovery_target_seconds / inputs.recovery_seconds_per_gib
    workers_for_recovery = math.ceil(changelog_gib / gib_per_worker) if gib_per_worker > 0 else 0
    per_worker = partitions_per_worker(pod)
    partitions = nice_partition_count(max(workers_for_cpu, workers_for_recovery))
    by_memory = math.ceil(partitions / per_worker)
    workers = max(workers_for_cpu, workers_for_recovery, by_memory)
    limits = {"CPU": workers_for_cpu, "recovery time": workers_for_recovery, "pod memory": by_memory}
    binds = max(limits, key=lambda name: limits[name])
    sink_cpu = scale.events_per_second * inputs.sink_us_per_event
    kafka_bytes = scale.events_per_second * (inputs.source_event_bytes + 2 * inputs.changelog_bytes)
    return Sizing(
        scale=scale,
        workers_for_cpu=workers_for_cpu,
        partitions_per_worker_by_memory=per_worker,
        workers_for_recovery=workers_for_recovery,
        partitions=partitions,
        workers=workers,
        sink_processes=math.ceil(sink_cpu / (pod.cpu * pod.utilisation * 1e6)),
        binds=binds,
        postgres_gib=scale.customers * inputs.postgres_bytes / GIB,
        redis_gib=scale.customers * scale.cached_share * inputs.redis_bytes / GIB,
        rocksdb_gib_per_worker=scale.customers * inputs.rocksdb_bytes * (1 + pod.standbys) / GIB / workers,
        changelog_gib=changelog_gib,
        kafka_mib_per_second=kafka_bytes / MIB,
    )


def nice_partition_count(needed: int) -> int:
    """The smallest of 12, 24, 48, 60, 120, 240, 360, 720, ... >= needed: counts with many divisors,
    so workers can be added in small steps and every worker still gets an equal share."""
    for count in (12, 24, 48, 60, 120, 240, 360, 720, 1440, 2880, 5040):
        if count >= needed:
            return count
    return math.ceil(needed / 720) * 720


def derive(inputs: Inputs) -> list[Sizing]:
    plan = Scale()
    return [size_for(plan, inputs), size_for(plan.times(10), inputs)]


def print_model(sizings: list[Sizing]) -> None:
    print("\n== capacity model (docs/capacity.md)")
    for sizing in sizings:
        scale = sizing.scale
        print(
            f"{scale.merchants:,} merchants, {scale.customers / 1e6:,.0f}M customers, "
            f"{scale.events_per_second:,.0f} events/s, {scale.reads_per_second:,.0f} reads/s:\n"
            f"  workers {sizing.workers} (CPU alone {sizing.workers_for_cpu}, "
            f"recovery alone {sizing.workers_for_recovery}), partitions {sizing.partitions} "
            f"({sizing.partitions_per_worker_by_memory} fit a pod's memory), "
            f"sink processes {sizing.sink_processes}\n"
            f"  PostgreSQL {sizing.postgres_gib:,.0f} GiB, Redis {sizing.redis_gib:,.1f} GiB, "
            f"RocksDB {sizing.rocksdb_gib_per_worker:,.1f} GiB per worker, "
            f"changelog {sizing.changelog_gib:,.0f} GiB (x replication), "
            f"Kafka {sizing.kafka_mib_per_second:,.1f} MiB/s\n"
            f"  binds first: {sizing.binds}"
        )
