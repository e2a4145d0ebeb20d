"""The alert rules hold up in promtool: they parse, and the 80 % bucket alert fires when it should."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from core_app.settings import REPO_ROOT

RULES = REPO_ROOT / "k8s" / "prometheus-rules.yaml"
CASES = """
rule_files: [{rules}]
evaluation_interval: 30s
tests:
  - interval: 30s
    input_series:
      - series: 'core_shopify_api_bucket_used_ratio{{shop="busy.myshopify.com", pod="core-0"}}'
        values: '0.5 0.85x10'
      - series: 'core_shopify_api_bucket_used_ratio{{shop="calm.myshopify.com", pod="core-0"}}'
        values: '0.79x12'
    alert_rule_test:
      - eval_time: 1m
        alertname: ShopifyApiBucketNearlyFull
        exp_alerts: []
      - eval_time: 4m
        alertname: ShopifyApiBucketNearlyFull
        exp_alerts:
          - exp_labels: {{severity: warning, shop: busy.myshopify.com}}
            exp_annotations:
              summary: "Shopify Admin API bucket of busy.myshopify.com is 85% full"
              description: >-
                The shop's REST bucket has stayed at 80 % or more for 2 minutes: imports for this shop
                are running at Shopify's limit and other calls for it may be answered 429.
"""


def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: apt-get install prometheus (.ci/run installs it)")
    return binary


def test_the_rules_parse() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_bucket_alert_fires_at_80_percent_only(tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(CASES.format(rules=RULES))
    result = subprocess.run([promtool(), "test", "rules", str(cases)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
