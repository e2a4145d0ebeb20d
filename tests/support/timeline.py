"""`CORE_TEST_TIMELINE=1`: each test process appends one JSON line per test (start, end, phase
times) to test-artifacts/timeline-<process>.jsonl, to see where the suite's wall time goes and
which files run alone at its end (`python -m tests.support.timeline` summarises)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def enabled() -> bool:
    return os.environ.get("CORE_TEST_TIMELINE") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    started = time.time()
    yield
    if not enabled():
        return
    process = os.environ.get("PYTEST_XDIST_WORKER", "main")
    ARTIFACTS.mkdir(exist_ok=True)
    line = {"process": process, "test": item.nodeid, "start": started, "end": time.time()}
    with (ARTIFACTS / f"timeline-{process}.jsonl").open("a") as timeline:
        timeline.write(json.dumps(line) + "\n")


def summarise(paths: list[Path]) -> None:
    spans: dict[tuple[str, str], list[float]] = defaultdict(lambda: [float("inf"), 0.0])
    for path in paths:
        for raw in path.read_text().splitlines():
            entry = json.loads(raw)
            span = spans[(entry["process"], entry["test"].split("::")[0])]
            span[0] = min(span[0], entry["start"])
            span[1] = max(span[1], entry["end"])
    origin = min(span[0] for span in spans.values())
    for (process, file), (start, end) in sorted(spans.items(), key=lambda kv: kv[1][0]):
        print(f"{process:5} {start - origin:7.1f} {end - origin:7.1f} {end - start:6.1f}  {file}")


if __name__ == "__main__":
    summarise([Path(arg) for arg in sys.argv[1:]] or sorted(ARTIFACTS.glob("timeline-*.jsonl")))
