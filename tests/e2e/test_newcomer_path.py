"""The README's quickstart, as a newcomer runs it: the block between `<!-- quickstart:begin -->` and
`<!-- quickstart:end -->` is read from README.md and run in a fresh clone of this repository, against
a fresh database, under `make dev` (the security layer on): a merchant from `core merchant create`,
1,000 customers from `core demo` through the real topics, and `core call` listing them with a signed
request that answers 200 (its development key created on first use). Then, through `core call` too:
settings, and segment counts covering all 1,000.

The clone is of the committed HEAD. By default its `.venv` is a wrapper around this interpreter with
the clone first on PYTHONPATH (so `make dev` finds it installed and the clone's code runs); with
`-m slow`, `make dev` creates the clone's own `.venv` with `pip install -e '.[dev]'` as a newcomer's
first run does.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

from core_app.settings import REPO_ROOT, Settings
from tests.support.processes import ARTIFACTS, eventually, free_port

BLOCK = re.compile(r"<!-- quickstart:begin -->\s*```sh\n(.*?)```\s*<!-- quickstart:end -->", re.S)
REPOSITORY = "<repository URL>"
THRESHOLDS = {
    "recency": {"min": 14, "max": 90},
    "frequency": {"min": 2, "max": 8},
    "monetary": {"min": 100, "max": 800},
}
CONFIG = {"points_per_dollar": 10, "languages": ["en"]}
# Variables of this process that would point the dev stack elsewhere than its own children.
NOT_INHERITED = {
    "KAFKA_BROKER",
    "SCHEMA_REGISTRY_URL",
    "DATA_DIR",
    "CORE_DB_URL",
    "VIRTUAL_ENV",
    "PYTHONPATH",
}


def quickstart() -> list[str]:
    """The README's quickstart commands, one per line, comments dropped."""
    found = BLOCK.search((REPO_ROOT / "README.md").read_text())
    assert found, "README.md has no quickstart block"
    lines = [re.sub(r"\s+#\s.*$", "", line).strip() for line in found.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


@dataclass
class Stack:
    repo: Path
    env: dict[str, str]  # terminal 2's: where `make dev` put the broker, the registry and the worker
    url: str

    def run(self, script: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", f"set -euo pipefail\n{script}"],
            cwd=self.repo, env=self.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def call(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.repo / ".venv/bin/core"), "call", *args],
            cwd=self.repo, env=self.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip


def clone(line: str, workdir: Path) -> Path:
    """The README's clone line, from this repository (its committed HEAD)."""
    if subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse"], capture_output=True).returncode != 0:
        pytest.fail("the quickstart test clones the repository: it needs a git checkout")
    command = line.replace(REPOSITORY, str(REPO_ROOT))
    done = subprocess.run(["bash", "-c", command], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return workdir / "core"


def wrap_venv(repo: Path) -> None:
    """A `.venv` that runs this interpreter on the clone's code, marked installed for `make dev`."""
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    core = bin_dir / "core"
    core.write_text(f'#!/bin/sh\nPYTHONPATH="{repo}" exec "{sys.executable}" -m core_app "$@"\n')
    core.chmod(0o755)
    (repo / ".venv" / ".installed").touch()  # newer than the clone's pyproject.toml


@contextmanager
def make_dev(repo: Path, line: str, database: str, settings: Settings) -> Iterator[Stack]:
    """Terminal 1: the README's `make dev` in the clone, on free ports, until the worker is ready."""
    ports = {
        name: str(free_port()) for name in ("HTTP_PORT", "GRPC_PORT", "DEV_BROKER_PORT", "DEV_REGISTRY_PORT")
    }
    base = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    base |= {"CORE_DB_NAME": database, "REDIS_KEY_PREFIX": f"{settings.redis_key_prefix}qs:", **ports}
    base |= {"KAFKA_TOPIC_PARTITIONS": "4", "LOG_LEVEL": "WARNING"}
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "quickstart-make-dev.log", "wb") as log:
        dev = subprocess.Popen(
            ["bash", "-c", line],
            cwd=repo,
            env=base,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{ports['HTTP_PORT']}"
    terminal_2 = base | {
        "KAFKA_BROKER": f"kafka://127.0.0.1:{ports['DEV_BROKER_PORT']}",
        "SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{ports['DEV_REGISTRY_PORT']}",
    }
    try:
        deadline = time.monotonic() + 600
        while not ready(url):
            assert dev.poll() is None, (ARTIFACTS / "quickstart-make-dev.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "make dev: the worker was not ready in time"
            time.sleep(1)
        yield Stack(repo, terminal_2, url)
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGINT)  # Ctrl-C, as the README says
            try:
                dev.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(dev.pid, signal.SIGKILL)
                dev.wait()
        drop_database(settings, database)


def ready(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def drop_database(settings: Settings, name: str) -> None:
    admin = psycopg2.connect(settings.model_copy(update={"core_db_name": "postgres"}).db_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def follow_the_readme(settings: Settings, workdir: Path, *, install: bool) -> None:
    lines = quickstart()
    clone_line, dev_line, *terminal_2 = lines
    assert clone_line == f"git clone {REPOSITORY} core && cd core" and dev_line == "make dev", lines
    assert terminal_2[0].startswith("M=$(.venv/bin/core merchant create --shop "), terminal_2
    assert any(line.startswith(".venv/bin/core demo --merchant $M --customers 1000") for line in terminal_2)
    assert terminal_2[-1].startswith('.venv/bin/core call GET "/core/v1/customers?merchant_id=$M'), terminal_2
    assert not [line for line in lines if "psql" in line or "INSERT" in line]  # no SQL on the way

    repo = clone(clone_line, workdir)
    if not install:
        wrap_venv(repo)
    with make_dev(repo, dev_line, f"core_quickstart_{uuid.uuid4().hex[:8]}", settings) as stack:
        done = stack.run("\n".join(terminal_2) + '\necho "MERCHANT=$M"')
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "HTTP 200" in done.stderr and "created development API key" in done.stderr, done.stderr
        assert "1000 new customers" in done.stdout and "all 1000 customers scored" in done.stdout, done.stdout
        out = done.stdout.splitlines()
        merchant = out[-1].removeprefix("MERCHANT=")
        body = out[next(i for i, line in enumerate(out) if line.startswith("{")) : -1]  # after demo's lines
        page = json.loads("\n".join(body))
        assert len(page["customers"]) == 20 and page["has_more"] is True
        assert set(page["customers"][0]) == {"id", "segment", "rfm_score"}
        assert "CORE_API_KEY=" in (repo / ".env").read_text()
        beyond_the_readme(stack, merchant)


def beyond_the_readme(stack: Stack, merchant: str) -> None:
    """Settings, then segment counts covering all 1,000 (the sink persists the settings)."""
    body = {"merchant_id": merchant, "rfm_thresholds": THRESHOLDS, "loyalty_config": CONFIG}
    saved = stack.call("POST", "/core/v1/settings", json.dumps(body))
    assert saved.returncode == 0 and "created development API key" not in saved.stderr, saved.stderr

    async def segmented() -> dict:
        counts = stack.call("GET", f"/core/v1/segments?merchant_id={merchant}")
        assert counts.returncode == 0, counts.stderr
        answer = json.loads(counts.stdout)
        by_name = {s["segment"]: s["customers"] for s in answer["segments"]}
        return answer if answer["total"] == 1000 and by_name["unscored"] == 0 else {}

    answer = asyncio.run(eventually(segmented, timeout=60, interval=1))
    assert sum(1 for s in answer["segments"] if s["customers"] > 0) >= 3  # realistic, not one segment
    refused = stack.call("GET", f"/core/v1/customers?merchant_id={merchant}&limit=999")
    assert refused.returncode == 1 and "HTTP 400" in refused.stderr


@pytest.mark.timeout(900)
def test_the_readme_quickstart_from_a_fresh_clone(settings: Settings, tmp_path: Path) -> None:
    follow_the_readme(settings, tmp_path, install=False)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_readme_quickstart_with_make_devs_own_install(settings: Settings, tmp_path: Path) -> None:
    follow_the_readme(settings, tmp_path, install=True)
