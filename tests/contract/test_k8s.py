"""The Kubernetes overlays rendered by a real `kubectl kustomize` (offline) and validated with
kubernetes-validate; the prometheus-operator objects against the vendored CRD schemas."""

from __future__ import annotations

import functools
import shutil
import subprocess
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from core_app.settings import REPO_ROOT

OVERLAYS = ("dev", "prod")
K8S_VERSION = "1.33.0"  # a current minor that kubernetes-validate ships schemas for
CRDS = {
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl missing: apt-get install kubectl (.ci/run installs it)"
    result = subprocess.run(
        [kubectl, "kustomize", str(REPO_ROOT / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def by_kind(overlay: str, kind: str, name: str = "core") -> dict[str, Any]:
    matches = [o for o in render(overlay) if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{overlay}: {kind}/{name} found {len(matches)} times"
    return matches[0]


def closed(schema: Any) -> Any:
    """The CRD's structural schema, strict: no property it does not declare (a typo must fail, not be
    pruned silently by the API server)."""
    if isinstance(schema, dict):
        schema = {k: closed(v) for k, v in schema.items()}
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
        if str(schema.get("pattern", "")).startswith("^(?i)"):  # Go's RE2 allows a flag there
            schema["pattern"] = "(?i)^" + schema["pattern"][5:]
    elif isinstance(schema, list):
        schema = [closed(v) for v in schema]
    return schema


@functools.cache
def crd_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((REPO_ROOT / "deploy" / "schemas" / CRDS[kind]).read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return closed(version["schema"]["openAPIV3Schema"])


def validate_crd(obj: dict[str, Any]) -> None:
    """OpenAPI v3 schemas are close to JSON Schema draft 7; the API server's structural checks are."""
    jsonschema.Draft7Validator(crd_schema(obj["kind"])).validate(obj)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates(overlay: str) -> None:
    objects = render(overlay)
    kinds = {o["kind"] for o in objects}
    expected = {"StatefulSet", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"}
    expected |= {"Job", "Deployment", "ConfigMap", "ServiceMonitor", "PrometheusRule"}
    assert expected <= kinds, f"missing {expected - kinds}"
    for obj in objects:
        where = f"{overlay}: {obj['kind']}/{obj['metadata']['name']}"
        assert obj["metadata"].get("namespace") == "loyalnest", where
        if obj["kind"] in CRDS:
            validate_crd(obj)
        else:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_crd_check_rejects_a_typo() -> None:
    monitor = by_kind("prod", "ServiceMonitor")
    broken = {**monitor, "spec": {**monitor["spec"], "endpoint": monitor["spec"]["endpoints"]}}
    with pytest.raises(jsonschema.ValidationError):
        validate_crd(broken)
    rule = by_kind("prod", "PrometheusRule")
    group = rule["spec"]["groups"][0]
    bad_group = {**group, "rules": [{**group["rules"][0], "exprr": "up"}]}
    with pytest.raises(jsonschema.ValidationError):
        validate_crd({**rule, "spec": {"groups": [bad_group]}})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_hpa_max_equals_the_partition_count(overlay: str) -> None:
    partitions = int(by_kind(overlay, "ConfigMap", "core-config")["data"]["KAFKA_TOPIC_PARTITIONS"])
    hpa = by_kind(overlay, "HorizontalPodAutoscaler")
    assert hpa["spec"]["maxReplicas"] == partitions
    assert hpa["spec"]["minReplicas"] == 3
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "core"}
    # Long enough for a Faust rebalance and table recovery to settle before the next one.
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 600
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_are_stateful_non_root_and_sized_per_the_plan(overlay: str) -> None:
    sts = by_kind(overlay, "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    for name in ("WORKER_ID", "KAFKA_GROUP_INSTANCE_ID"):
        assert env[name]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert container["command"][-2:] == ["core", "worker"]
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    data_dir = by_kind(overlay, "ConfigMap", "core-config")["data"]["DATA_DIR"]
    assert mounts["rocksdb"] == data_dir  # the one writable, persistent path
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["rocksdb"]
    assert sts["spec"]["serviceName"] == "core-workers"
    assert by_kind(overlay, "Service", "core-workers")["spec"]["clusterIP"] == "None"
    ports = {p["port"] for p in by_kind(overlay, "Service", "core")["spec"]["ports"]}
    assert ports == {8080, 50051}
    assert by_kind(overlay, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_limits_egress_to_the_dependencies(overlay: str) -> None:
    policy = by_kind(overlay, "NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 8080, 9092, 8081, 5432, 6379, 50051}
    first = policy["ingress"][0]
    assert first["from"] == [{"podSelector": {"matchLabels": {"app": "core"}}}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_sink_and_migration_run_the_image(overlay: str) -> None:
    sts_image = by_kind(overlay, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["image"]
    sink = by_kind(overlay, "Deployment", "core-sink")["spec"]["template"]["spec"]["containers"][0]
    job = by_kind(overlay, "Job", "core-migrate")["spec"]["template"]["spec"]["containers"][0]
    assert sink["command"][-2:] == ["core", "sink"] and job["command"][-2:] == ["core", "migrate"]
    assert sink["image"] == job["image"] == sts_image
    assert by_kind(overlay, "ConfigMap", "core-config")["data"]["SINK_IN_WORKER"] == "false"


def test_prometheus_rule_carries_the_rules_file() -> None:
    rules = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "rules" / "core.rules.yml").read_text())
    assert by_kind("prod", "PrometheusRule")["spec"]["groups"] == rules["groups"]


PLAN_REDIS = {"maxmemory-policy": "volatile-lru", "appendonly": "yes", "appendfsync": "everysec"}


def redis_conf(text: str) -> dict[str, str]:
    pairs = (line.split(None, 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {name: value.strip() for name, value in pairs}


def test_the_dev_overlay_ships_a_redis_with_the_plans_settings() -> None:
    config = next(
        o
        for o in render("dev")
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("core-redis-config")
    )
    assert PLAN_REDIS.items() <= redis_conf(config["data"]["redis.conf"]).items()
    sts = by_kind("dev", "StatefulSet", "core-redis")
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["redis-server", "/etc/redis/redis.conf"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config["metadata"]["name"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"config": "/etc/redis", "data": redis_conf(config["data"]["redis.conf"])["dir"]}
    assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    # The workers reach it by the name in REDIS_HOST, on the pods their NetworkPolicy allows.
    service = by_kind("dev", "Service", "core-redis")
    assert by_kind("dev", "ConfigMap", "core-config")["data"]["REDIS_HOST"] == service["metadata"]["name"]
    assert service["spec"]["selector"] == {"app": "core-redis"} == sts["spec"]["selector"]["matchLabels"]


def test_prod_uses_an_external_redis_and_compose_the_same_settings() -> None:
    """Production brings its own Redis (managed, or a Cluster with REDIS_CLUSTER=true), configured
    as k8s/redis/redis.conf says (D182); compose runs redis-server with the same flags."""
    assert not [o for o in render("prod") if "redis" in o["metadata"]["name"] and o["kind"] != "ConfigMap"]
    compose = yaml.safe_load((REPO_ROOT / "deploy" / "compose.yaml").read_text())
    flags = compose["services"]["redis"]["command"][1:]
    assert (
        PLAN_REDIS.items()
        <= {
            name.removeprefix("--"): value for name, value in zip(flags[::2], flags[1::2], strict=True)
        }.items()
    )
