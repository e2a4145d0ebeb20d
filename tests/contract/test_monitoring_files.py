"""Alert rules, their unit tests, the Alertmanager routing and the generated dashboard, checked with
the real promtool and amtool (Debian's prometheus and prometheus-alertmanager; .ci/run installs
them)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from core_app.settings import REPO_ROOT
from scripts import gen_monitoring

PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules" / "core.rules.yml"
RULE_TESTS = PROMETHEUS / "tests" / "core.rules.test.yml"
ALERTMANAGER = REPO_ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} missing: apt-get install prometheus prometheus-alertmanager (.ci/run does)"
    return path


def run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def alert_names() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    out = run(tool("promtool"), "check", "rules", str(RULES))
    assert f"SUCCESS: {len(alert_names())} rules found" in out


def test_promtool_unit_tests_pass() -> None:
    assert "SUCCESS" in run(tool("promtool"), "test", "rules", str(RULE_TESTS))


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases = [c for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for c in test["alert_rule_test"]]
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    names = set(alert_names())
    assert names - firing == set(), "alerts without a firing unit test"
    # Threshold alerts also show they stay quiet below the threshold or before their `for`.
    assert names - quiet - {"CoreGraphQLLatencyHigh"} == set(), "alerts without a quiet case"


def test_every_alert_has_a_runbook_section() -> None:
    runbook = (REPO_ROOT / "docs" / "runbook.md").read_text()
    headings = {re.sub(r"[^a-z0-9]", "", h.lower()) for h in re.findall(r"^#+ (.+)$", runbook, re.M)}
    for rule in (r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]):
        anchor = rule["annotations"]["runbook_url"].split("#")[1]
        assert anchor == rule["alert"].lower()
        assert anchor in headings, f"docs/runbook.md has no section {rule['alert']}"


def test_amtool_check_config() -> None:
    assert "SUCCESS" in run(tool("amtool"), "check-config", str(ALERTMANAGER))


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=CoreImportFailureAnomaly", "severity=critical", "category=security"], "core-security"),
        (["alertname=CoreUnauthorizedAccess", "severity=warning", "category=security"], "core-security"),
        (["alertname=CoreGdprDeadlineNear", "severity=critical", "category=gdpr"], "core-gdpr"),
        (["alertname=CorePartitionStalled", "severity=critical"], "core-oncall"),
        (["alertname=CoreImportFailures", "severity=warning"], "core-default"),
    ],
)
def test_alertmanager_routes(labels: list[str], receiver: str) -> None:
    out = run(tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert out.split() == [receiver]


def test_generated_files_are_current() -> None:
    for path, text in gen_monitoring.rendered().items():
        assert path.read_text() == text, (
            f"{path.name} is stale: run .venv/bin/python scripts/gen_monitoring.py"
        )


def test_dashboard_has_the_issues_panels() -> None:
    board = json.loads(gen_monitoring.DASHBOARD.read_text())
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for metric in (
        "core_customers_created_total",
        "core_rfm_reads_total",
        "core_imports_initiated_total",
        "graphql_query_duration_seconds_bucket",
        "core_cache_hits_total",
        "core_consumer_lag",
        "core_sink_lag",
        "core_dead_letters_total",
        "core_parked_events",
        "core_request_duration_seconds_bucket",
        "core_imports_finished_total",
        'core_events_processed_total{topic="gdpr_request.created"}',
        "core_auth_refused_total",
        "core_shopify_api_bucket_used_ratio",
    ):
        assert metric in exprs, metric
    assert all(p["targets"] and p["datasource"]["type"] == "prometheus" for p in panels)
