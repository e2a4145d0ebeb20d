"""The worker's memory at start and between chunks (issue 21, D257, D258): optional SDKs are not
imported, malloc arenas are capped, and memory freed inside the heap goes back to the OS."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core_app import malloc_tuning
from core_app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
GLIBC = malloc_tuning._libc() is not None


def test_the_worker_imports_no_posthog_without_a_key() -> None:
    code = "import json, sys, core_app.bootstrap; print(json.dumps(sorted(sys.modules)))"
    env = {k: v for k, v in os.environ.items() if k != "POSTHOG_API_KEY"}
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    loaded = {name.split(".")[0] for name in json.loads(run.stdout or "[]")}
    assert "faust" in loaded, run.stderr
    assert not loaded & {"posthog", "requests"}


def test_the_defaults_cap_arenas_and_trim_every_ten_seconds() -> None:
    settings = Settings()
    assert settings.malloc_arena_max == 2
    assert settings.malloc_mmap_threshold == 0  # glibc's sliding one: a fixed one cost CPU (D258)
    assert settings.malloc_trim_interval == 10.0


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_glibc_takes_the_settings() -> None:
    # This process's own values: 8 arenas a core is glibc's default, 128 KiB its initial threshold.
    assert malloc_tuning.tune_malloc(Settings(malloc_arena_max=8 * 64, malloc_mmap_threshold=128 * 1024))
    assert malloc_tuning.tune_malloc(Settings(malloc_arena_max=0, malloc_mmap_threshold=0))


def rss_anon_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon")


@pytest.mark.skipif(not GLIBC or not Path("/proc/self/status").exists(), reason="glibc on Linux")
def test_trim_returns_the_free_pages_inside_the_heap() -> None:
    malloc_tuning.trim()
    blocks = [bytes(1000) for _ in range(60_000)]  # malloc'd (over pymalloc's 512 bytes), ~60 MiB
    kept = blocks[::16]  # pins the heap's top: without a trim the free pages between stay resident
    del blocks
    before = rss_anon_kib()
    assert malloc_tuning.trim() is True
    assert before - rss_anon_kib() > 30 * 1024, (before, rss_anon_kib())
    assert len(kept) == 3750


@pytest.mark.skipif(not GLIBC, reason="glibc only")
async def test_the_service_trims_on_its_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(malloc_tuning, "trim", lambda: calls.append(True) or True)
    service = malloc_tuning.MallocTrim(Settings(malloc_trim_interval=0.05))
    await service.start()
    await asyncio.sleep(0.3)
    await service.stop()
    assert len(calls) >= 2
    idle = malloc_tuning.MallocTrim(Settings(malloc_trim_interval=0))
    await idle.start()
    await asyncio.sleep(0.1)
    await idle.stop()
    assert len(calls) <= 6
