"""A live worker's operations side: Consul registration (fake agent), PostHog events (fake capture
endpoint), every metric the alert rules and dashboard name on its /metrics, and one alert driven for
real (4 failed imports) through a real Prometheus scraping it. The worker has the security layer on
and a Tansu of its own; the last test stops it with SIGTERM and expects the deregistration."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from grpclib.client import Channel
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from core_app.consumer_metrics import ConsumerCollector
from core_app.events.codec import EventCodec
from core_app.ops import product_events
from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.security.principal import FULL
from core_app.settings import REPO_ROOT, Settings
from scripts import gen_monitoring
from tests.support.auth import ApiCredentials, create_api_credentials, grpc_metadata, mint_jwt, signed_session
from tests.support.events import at, new_merchant, produce, rfm
from tests.support.file_server import FileServer
from tests.support.ops_fakes import FakeConsul, FakePostHog, RunningPrometheus
from tests.support.processes import (
    WorkerProcess,
    eventually,
    running_tansu,
    start_worker,
    stop_process,
    wait_ready,
)
from tests.support.promql_names import TARGET_LABELS, uses

RULES = REPO_ROOT / "deploy" / "prometheus" / "rules" / "core.rules.yml"
# Named by a rule or panel but not exported yet: the feature that owns the data is not built. Each
# must be absent from /metrics (so this list shrinks as features land) and is unit-tested on
# synthetic series in deploy/prometheus/tests/core.rules.test.yml.
PENDING: dict[str, str] = {}  # core_gdpr_request_oldest_open_age_seconds came off with issue 17 (D160)
FROM_PROMETHEUS = {"up"}  # a scrape's own series


@pytest.fixture(scope="module")
def ops_broker(data_root: Path) -> Iterator[str]:
    with running_tansu(data_root / "tansu-ops.log") as url:
        yield url


@pytest.fixture(scope="module")
async def fakes() -> AsyncIterator[tuple[FakeConsul, FakePostHog, FileServer]]:
    consul, posthog, files = FakeConsul(), FakePostHog(), FileServer()
    for server in (consul, posthog, files):
        await server.start()
    yield consul, posthog, files
    for server in (consul, posthog, files):
        await server.stop()


@pytest.fixture(scope="module")
async def ops_worker(
    worker_env: dict[str, str], ops_broker: str, fakes: tuple[FakeConsul, FakePostHog, FileServer]
) -> AsyncIterator[WorkerProcess]:
    consul, posthog, _ = fakes
    env = worker_env | {
        "AUTH_ENABLED": "true",
        "KAFKA_BROKER": ops_broker,
        "SERVICE_NAME": "core-ops-test",
        "CONSUL_HTTP_ADDR": consul.url,
        "POSTHOG_API_KEY": "phc_test_key",
        "POSTHOG_HOST": posthog.url,
    }
    process = start_worker("worker-ops", env)
    try:
        await wait_ready(process)
        yield process
    finally:
        stop_process(process.process)


@pytest.fixture(scope="module")
def creds(settings: Settings) -> ApiCredentials:
    return create_api_credentials(settings, new_merchant(settings), (FULL,))


async def scrape(worker: WorkerProcess) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{worker.url}/metrics") as response:
        assert response.status == 200
        return await response.text()


async def test_registers_in_consul_with_the_plans_check(
    ops_worker: WorkerProcess, fakes: tuple[FakeConsul, FakePostHog, FileServer]
) -> None:
    consul = fakes[0]
    await eventually(lambda: _async(consul.services), timeout=30)
    assert [c[0] for c in consul.calls][:2] == ["register", "register"]  # the refused one was retried
    service = consul.services["core-worker-ops"]
    assert (service["Name"], service["Tags"], service["Port"]) == (
        "core",
        ["core", "customers", "settings"],
        ops_worker.http_port,
    )
    assert service["Meta"]["grpc_port"] == str(ops_worker.grpc_port)
    assert service["TaggedAddresses"]["grpc"]["Port"] == ops_worker.grpc_port
    check = service["Check"]
    assert (check["Interval"], check["Timeout"]) == ("10s", "2s")
    assert check["DeregisterCriticalServiceAfter"]
    async with aiohttp.ClientSession() as http, http.get(check["HTTP"]) as response:
        assert response.status == 200 and (await response.json()) == {"status": "UP"}


async def _async(value: object) -> object:
    return value


async def test_product_events_reach_posthog_without_pii(
    ops_worker: WorkerProcess,
    fakes: tuple[FakeConsul, FakePostHog, FileServer],
    creds: ApiCredentials,
    ops_broker: str,
    codec: EventCodec,
    worker_env: dict[str, str],
) -> None:
    posthog, files = fakes[1], fakes[2]
    merchant = creds.merchant_id
    email = f"Private.Person+{uuid.uuid4().hex[:6]}@example.com"
    async with signed_session(creds) as http:
        body = {"merchant_id": merchant, "email": email, "metadata": {"first_name": "Ana"}}
        async with http.post(f"{ops_worker.url}/core/v1/customers", json=body) as response:
            assert response.status == 201, await response.text()
            customer_id = (await response.json())["id"]
        body = {"merchant_id": merchant, "source": "custom", "file_url": files.url("/files/none.csv")}
        async with http.post(f"{ops_worker.url}/core/v1/imports", json=body) as response:
            assert response.status == 202, await response.text()
    channel = Channel("127.0.0.1", ops_worker.grpc_port)
    try:
        request = pb.UpdateCustomerRequest(merchant_id=merchant, customer_id=customer_id)
        request.metadata.update({"tier": "gold", "last_name": "Private"})
        await CoreServiceStub(channel).UpdateCustomer(request, metadata=grpc_metadata(mint_jwt(merchant)))
    finally:
        channel.close()
    kafka = AIOKafkaProducer(bootstrap_servers=ops_broker.removeprefix("kafka://"))
    await kafka.start()
    try:
        await produce(kafka, codec, [rfm(merchant, customer_id, (5, 4, 3), at(0))])
    finally:
        await kafka.stop()
    # The CLI is its own process and must send before it exits (not blocking this loop: the fake
    # PostHog answers from it).
    flags = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "core_app", "flags", "set", merchant, "rfm_score_enabled", "off"],
        env=os.environ | worker_env | {"POSTHOG_API_KEY": "phc_test_key", "POSTHOG_HOST": posthog.url},
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(flags.communicate(), timeout=60)
    assert flags.returncode == 0, stderr.decode()

    async def all_arrived() -> dict[str, dict]:
        mine = {e["event"]: e for e in posthog.events if e["distinct_id"] == merchant}
        return mine if set(mine) == product_events.EVENTS else {}

    events = await eventually(all_arrived, timeout=30)
    assert events["import_initiated"]["properties"]["source"] == "custom"
    assert events["rfm_score_updated"]["properties"]["count"] == 1
    flag = events["feature_flag_toggled"]["properties"]
    assert (flag["flag"], flag["enabled"]) == ("rfm_score_enabled", False)
    everything = b"".join(posthog.raw).decode().lower()
    for personal in (email.lower(), "ana", "private", "none.csv", customer_id):
        assert personal not in everything, personal
    assert all(json.loads(raw)["api_key"] == "phc_test_key" for raw in posthog.raw)


async def test_every_metric_in_rules_and_panels_is_on_metrics(
    ops_worker: WorkerProcess, creds: ApiCredentials
) -> None:
    async with aiohttp.ClientSession() as http:  # unsigned: one real refusal, so its labels show
        async with http.get(f"{ops_worker.url}/core/v1/customers?merchant_id={creds.merchant_id}") as r:
            assert r.status == 401

    async def committed() -> bool:  # the create above was consumed and its offset committed
        return "core_consumer_committed_offset" in exported(await scrape(ops_worker))[1]

    await eventually(committed, timeout=30)
    names, labels = exported(await scrape(ops_worker))
    for name in PENDING:
        assert name not in names, f"{name} is exported now: take it off PENDING"
    for where, expr in expressions():
        used = uses(expr)
        offered = set(TARGET_LABELS)
        for metric, matched in used.metrics.items():
            if metric in PENDING or metric in FROM_PROMETHEUS:
                continue
            assert metric in names, f"{where}: {metric} is not on a worker's /metrics"
            have = labels.get(metric) or declared_labels(metric)
            assert matched - TARGET_LABELS <= have, f"{where}: {metric} has no label {matched - have}"
            offered |= have
        if any(m not in PENDING and m not in FROM_PROMETHEUS for m in used.metrics):
            assert used.grouping <= offered, f"{where}: no series has {used.grouping - offered}"


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def exported(text: str) -> tuple[set[str], dict[str, set[str]]]:
    """Series names on /metrics (declared ones without a sample yet included) and, for those with
    samples, the label names they carry."""
    names: set[str] = set()
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        names |= {family.name, *(family.name + s for s in SUFFIXES.get(family.type, ()))}
        for sample in family.samples:
            names.add(sample.name)
            labels.setdefault(sample.name, set()).update(sample.labels)
    return names, labels


def declared_labels(series: str) -> set[str]:
    """Label names of a series the worker declares but has not sampled yet (a labelled counter before
    its first event): from the same code's definition, the collector registered under that name."""
    importlib.import_module("core_app.main")  # registers every collector the worker has
    for collector, collector_names in REGISTRY._collector_to_names.items():  # type: ignore[attr-defined]
        if series in collector_names:
            extra = {"le"} if series.endswith("_bucket") else set()
            return set(getattr(collector, "_labelnames", ())) | extra
    for family in ConsumerCollector(app=None).collect():  # registered by the worker's build()
        if family.name == series:
            return set(family._labelnames)  # type: ignore[attr-defined]
    raise AssertionError(f"{series}: on /metrics but not defined in this code")


def expressions() -> list[tuple[str, str]]:
    found = [
        (f"rule {r['alert']}", r["expr"])
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
    ]
    for panel in gen_monitoring.dashboard()["panels"]:
        found += [(f"panel {panel['title']}", t["expr"]) for t in panel.get("targets", [])]
    return found


def total(text: str, series: str, **match: str) -> float:
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == series and all(s.labels.get(k) == v for k, v in match.items())
    )


async def test_four_failed_imports_fire_the_alert_in_a_real_prometheus(
    ops_worker: WorkerProcess,
    fakes: tuple[FakeConsul, FakePostHog, FileServer],
    creds: ApiCredentials,
    data_root: Path,
) -> None:
    files = fakes[2]

    async def imports_settled() -> bool:  # earlier tests' imports have ended
        text = await scrape(ops_worker)
        return total(text, "core_imports_initiated_total") == total(text, "core_imports_finished_total")

    await eventually(imports_settled, timeout=60)
    prometheus = RunningPrometheus(data_root / "prometheus", [f"127.0.0.1:{ops_worker.http_port}"], [RULES])
    prometheus.start()
    try:

        async def scraped_twice() -> bool:
            data = await prometheus.api("query", query='count_over_time(up{job="core"}[1m])')
            return bool(data["result"]) and float(data["result"][0]["value"][1]) >= 2

        await eventually(scraped_twice, timeout=30)
        async with signed_session(creds) as http:
            for n in range(4):
                url = files.url(f"/files/missing-{n}.csv")  # 404: the import fails, not retried
                body = {"merchant_id": creds.merchant_id, "source": "custom", "file_url": url}
                async with http.post(f"{ops_worker.url}/core/v1/imports", json=body) as response:
                    assert response.status == 202, await response.text()

        async def firing() -> list[str]:
            alerts = (await prometheus.api("alerts"))["alerts"]
            return [a["labels"]["alertname"] for a in alerts if a["state"] == "firing"]

        assert "CoreImportFailures" in await eventually(firing, timeout=60)

        async def settled() -> bool:
            # increase() extrapolates over the few seconds of samples; it settles near 4 as they grow.
            query = 'sum(increase(core_imports_finished_total{status="failed"}[1h]))'
            value = float((await prometheus.api("query", query=query))["result"][0]["value"][1])
            alerts = await firing()
            anomaly = "CoreImportFailureAnomaly" in alerts  # > 5 only
            return 4 <= value < 5 and "CoreImportFailures" in alerts and not anomaly

        await eventually(settled, timeout=60, interval=1)
        rules = await prometheus.api("rules")
        health = {r["name"]: r["health"] for g in rules["groups"] for r in g["rules"]}
        assert set(health.values()) == {"ok"}, health  # every expression evaluates on live series
    finally:
        prometheus.stop()


async def test_deregisters_from_consul_on_sigterm(
    ops_worker: WorkerProcess, fakes: tuple[FakeConsul, FakePostHog, FileServer]
) -> None:
    consul = fakes[0]
    assert "core-worker-ops" in consul.services
    ops_worker.process.send_signal(signal.SIGTERM)

    async def exited() -> bool:
        return ops_worker.process.poll() is not None

    await eventually(exited, timeout=40)
    assert ("deregister", "core-worker-ops", None) in consul.calls
    assert consul.services == {}
