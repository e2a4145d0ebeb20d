"""The newcomer path against a worker with the security layer on: `core demo` fills a merchant with
1,000 customers through the real topics, then `core call` lists them with a signed request, creating
its development key on first use."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from asyncio.subprocess import PIPE
from dataclasses import dataclass
from pathlib import Path

from core_app.settings import Settings
from tests.helpers import WorkerProcess, eventually
from tests.integration.conftest import pg
from tests.integration.events import new_merchant

THRESHOLDS = {
    "recency": {"min": 14, "max": 90},
    "frequency": {"min": 2, "max": 8},
    "monetary": {"min": 100, "max": 800},
}
CONFIG = {"points_per_dollar": 10, "languages": ["en"]}


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


async def core(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 180) -> Done:
    """`core ...` as a subprocess, awaited: the test registry runs on this test's event loop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core_app", *args,
        env={**os.environ, **env}, cwd=cwd, stdout=PIPE, stderr=PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


async def test_demo_then_signed_list_call(
    secure_worker: WorkerProcess,
    worker_env: dict[str, str],
    secure_broker: str,
    settings: Settings,
    tmp_path: Path,
) -> None:
    merchant = new_merchant(settings)
    env = worker_env | {"KAFKA_BROKER": secure_broker, "CORE_URL": secure_worker.url, "LOG_LEVEL": "WARNING"}
    demo = await core(["demo", "--merchant", merchant, "--customers", "1000", "--wait", "150"], env, tmp_path)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "1000 new customers" in demo.stdout and "all 1000 customers scored" in demo.stdout

    listed = await core(
        ["call", "GET", f"/core/v1/customers?merchant_id={merchant}&limit=50&fields=segment"], env, tmp_path
    )
    assert listed.returncode == 0, listed.stderr
    assert "HTTP 200" in listed.stderr and "created development API key" in listed.stderr
    page = json.loads(listed.stdout)
    assert len(page["customers"]) == 50 and page["has_more"] is True
    assert "CORE_API_KEY=" in (tmp_path / ".env").read_text()

    body = {"merchant_id": merchant, "rfm_thresholds": THRESHOLDS, "loyalty_config": CONFIG}
    saved = await core(["call", "POST", "/core/v1/settings", json.dumps(body)], env, tmp_path)
    assert saved.returncode == 0 and "created development API key" not in saved.stderr, saved.stderr

    async def segmented() -> dict:
        counts = await core(["call", "GET", f"/core/v1/segments?merchant_id={merchant}"], env, tmp_path)
        assert counts.returncode == 0, counts.stderr
        answer = json.loads(counts.stdout)
        by_name = {s["segment"]: s["customers"] for s in answer["segments"]}
        return answer if answer["total"] == 1000 and by_name["unscored"] == 0 else {}

    answer = await eventually(segmented, timeout=60, interval=1)  # the sink persists the settings
    assert sum(1 for s in answer["segments"] if s["customers"] > 0) >= 3  # realistic, not one segment
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM customers WHERE merchant_id = %s AND metadata ? 'points'", (merchant,)
        )
        assert cur.fetchone()[0] == 1000  # points.updated went through the pipeline too

    refused = await core(
        ["call", "GET", f"/core/v1/customers?merchant_id={merchant}&limit=999"], env, tmp_path
    )
    assert refused.returncode == 1 and "HTTP 400" in refused.stderr
