"""deploy/compose.yaml against the compose-spec JSON schema (vendored from check-jsonschema's
copy of compose-spec/compose-spec) and against what the issue and the plan ask of it."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from core_app.settings import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
WORKERS = ("core-1", "core-2", "core-3")


@functools.cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # merge keys (<<) resolved like Compose does


def services() -> dict[str, Any]:
    return compose()["services"]


def test_validates_against_the_compose_spec() -> None:
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_check_catches_a_mistake() -> None:
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
    broken = {
        **compose(),
        "services": {**services(), "redis": {**services()["redis"], "restart_policy": "x"}},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_kafka_is_three_kraft_brokers_and_a_real_registry() -> None:
    brokers = [s for name, s in services().items() if name.startswith("kafka-")]
    assert len(brokers) == 3
    voters = {b["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for b in brokers}
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
    assert {b["environment"]["KAFKA_PROCESS_ROLES"] for b in brokers} == {"broker,controller"}
    assert "zookeeper" not in " ".join(services())
    assert services()["schema-registry"]["image"].startswith(
        ("confluentinc/cp-schema-registry", "ghcr.io/aiven")
    )


def test_redis_runs_with_the_plans_settings() -> None:
    command = " ".join(services()["redis"]["command"])
    for setting in ("--maxmemory-policy volatile-lru", "--appendonly yes", "--appendfsync everysec"):
        assert setting in command


def test_three_workers_and_a_sink_on_the_loyalnest_network() -> None:
    for name in (*WORKERS, "core-sink"):
        service = services()[name]
        assert service["image"] == "core:latest"
        assert service["networks"] == ["loyalnest"]
        assert service["deploy"]["resources"]["limits"] == {"cpus": "0.5", "memory": "512M"}
    assert [services()[w]["command"] for w in WORKERS] == [["worker"]] * 3
    assert services()["core-sink"]["command"] == ["sink"]
    worker_ids = {services()[w]["environment"]["WORKER_ID"] for w in WORKERS}
    assert worker_ids == set(WORKERS)
    assert compose()["networks"]["loyalnest"]["name"] == "loyalnest"
    assert services()["migrate"]["command"] == ["migrate"]
    # The plan's variables reach the workers.
    env = services()["core-1"]["environment"]
    for variable in ("CORE_DB_HOST", "KAFKA_BROKER", "REDIS_HOST", "LAUNCHDARKLY_SDK_KEY", "SHOPIFY_API_KEY"):
        assert variable in env


def test_consul_registration_matches_the_plan() -> None:
    assert {"consul", "registrator"} <= set(services())
    env = services()["core-1"]["environment"]
    assert env["CONSUL_HTTP_ADDR"] == "http://consul:8500"
    assert env["SERVICE_NAME"] == "core"
    assert env["SERVICE_TAGS"] == "core,customers,settings"
    assert (env["SERVICE_CHECK_HTTP"], env["SERVICE_CHECK_INTERVAL"], env["SERVICE_CHECK_TIMEOUT"]) == (
        "/health",
        "10s",
        "2s",
    )


def mounted_sources() -> list[Path]:
    sources = []
    for service in services().values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                sources.append(DEPLOY / source)
    return sources


def test_monitoring_is_provisioned_from_this_repo() -> None:
    for name in ("prometheus", "alertmanager", "grafana"):
        assert name in services()
    sources = mounted_sources()
    assert DEPLOY / "prometheus" / "rules" in sources
    assert DEPLOY / "grafana" / "dashboards" in sources
    assert DEPLOY / "alertmanager" / "alertmanager.yml" in sources
    for source in sources:
        assert source.exists(), f"compose mounts {source}, which does not exist"
    assert (DEPLOY / "grafana" / "dashboards" / "core.json").exists()


def test_prometheus_config_scrapes_every_worker() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: apt-get install prometheus (.ci/run does)"
    config = DEPLOY / "prometheus" / "prometheus.yml"
    result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {j["job_name"]: j for j in yaml.safe_load(config.read_text())["scrape_configs"]}
    targets = {t for c in jobs["core"]["static_configs"] for t in c["targets"]}
    assert targets == {f"{w}:8080" for w in WORKERS}
