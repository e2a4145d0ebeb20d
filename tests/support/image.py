"""The Dockerfile read as instructions, for the offline image checks and the entry-point test."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core_app.settings import REPO_ROOT

BIN = Path(sys.executable).parent
DOCKERFILE = REPO_ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str, int]]:
    """(INSTRUCTION, arguments, stage index) with line continuations joined and comments dropped."""
    result, stage, pending = [], -1, ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        pending += line.removesuffix("\\") + " "
        if line.endswith("\\"):
            continue
        keyword, _, args = pending.strip().partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        result.append((keyword.upper(), args.strip(), stage))
    return result


def entry_command() -> list[str]:
    final = {k: a for k, a, _ in instructions()}  # the last ENTRYPOINT and CMD win
    entrypoint, cmd = json.loads(final["ENTRYPOINT"]), json.loads(final["CMD"])
    assert entrypoint[:2] == ["tini", "--"], "tini must run as PID 1 to forward SIGTERM"
    return entrypoint[2:] + cmd
