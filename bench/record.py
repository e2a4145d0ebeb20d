"""Run one bench and keep its result as JSON under bench/results/ (the run history; docs/benchmarks.md
keeps the method and the latest figures).

    .venv/bin/python -m bench.record ingest bench/results/2026-12-04-x-ingest.json -- --rss-customers 0
    .venv/bin/python -m bench.record reads OUT.json --from-output saved.txt --commit HASH --started ...

The JSON holds the commit, the arguments, start and end (UTC), the load average at the start, the
ratio lines the bench prints last (the verdicts), and its whole output.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def ratio_lines(output: list[str]) -> list[str]:
    """The lines after the bench's last `== ratios` heading."""
    starts = [i for i, line in enumerate(output) if line.startswith("== ratios")]
    return [line for line in output[starts[-1] + 1 :] if line.strip()] if starts else []


def record(bench: str, output: list[str], meta: dict[str, object]) -> dict[str, object]:
    return meta | {"bench": f"bench/{bench}.py", "ratios": ratio_lines(output), "output": output}


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """(ours, the bench's): the bench's arguments follow `--`."""
    if "--" not in argv:
        return argv, []
    at = argv.index("--")
    return argv[:at], argv[at + 1 :]


def main() -> None:
    mine, bench_args = _split(sys.argv[1:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bench", help="ingest, reads, imports, ...")
    parser.add_argument("out", type=Path)
    parser.add_argument("--from-output", type=Path, help="record a run made earlier from its saved output")
    parser.add_argument("--commit", help="with --from-output: the commit it ran on")
    parser.add_argument("--started", help="with --from-output")
    parser.add_argument("--finished", help="with --from-output")
    parser.add_argument("--load", help="with --from-output: load average at the start")
    parser.add_argument("--note", default="")
    parser.epilog = "Arguments after -- go to the bench."
    options = parser.parse_args(mine)
    meta: dict[str, object] = {"args": bench_args, "cores": os.cpu_count(), "note": options.note}
    if options.from_output:
        output = options.from_output.read_text().splitlines()
        meta |= {"commit": options.commit, "started": options.started, "finished": options.finished}
        meta["load_average_at_start"] = options.load
    else:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        meta |= {"commit": commit.stdout.strip(), "started": now(), "load_average_at_start": os.getloadavg()}
        run = subprocess.run(
            [sys.executable, "-m", f"bench.{options.bench}", *bench_args],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        output = (run.stdout + run.stderr).splitlines()
        meta |= {"finished": now(), "returncode": run.returncode}
        print("\n".join(output))
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(record(options.bench, output, meta), indent=1) + "\n")


if __name__ == "__main__":
    main()
