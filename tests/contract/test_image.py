"""The container image, checked offline (no Docker engine here): hadolint, every file the image
copies is in the build context, and its entry point resolves to `core worker` in this venv."""

from __future__ import annotations

import fnmatch
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest

from core_app.cli import parser
from core_app.settings import REPO_ROOT
from tests.support.image import BIN, DOCKERFILE, instructions


def dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent covers the file."""
    patterns = [p.strip() for p in (REPO_ROOT / ".dockerignore").read_text().splitlines() if p.strip()]
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in (p for p in patterns if not p.startswith("#")):
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/").removeprefix("**/")
        if any(fnmatch.fnmatch(c, pattern) or fnmatch.fnmatch(c.split("/")[-1], pattern) for c in candidates):
            excluded = not negate
    return excluded


def context_copies() -> list[str]:
    """Source paths of every COPY/ADD from the build context (not `--from=` another stage)."""
    sources = []
    for keyword, args, _ in instructions():
        if keyword in {"COPY", "ADD"} and "--from=" not in args:
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            sources.extend(words[:-1])
    return sources


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_copied_path_exists_in_the_build_context() -> None:
    sources = context_copies()
    assert sources, "no COPY found"
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"COPY {source}: no such file in the repo"
        assert not dockerignore_excludes(source), f"COPY {source}: excluded by .dockerignore"


def test_the_image_carries_every_package_and_runtime_resource() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    copied = {Path(s).as_posix().rstrip("/") for s in context_copies()}
    # Read at run time relative to REPO_ROOT (core_app/settings.py, views/graphql.py).
    for needed in [*packages, "migrations", "avro", "schema.graphql", "pyproject.toml"]:
        assert needed in copied, f"the image does not copy {needed}"


def test_dockerignore_keeps_local_state_out() -> None:
    for local in (".venv/bin/python", "var/data/x", "test-artifacts/w.log", ".git/HEAD", "tests/x.py"):
        assert dockerignore_excludes(local), local
    assert not dockerignore_excludes("core_app/cli.py")
    assert dockerignore_excludes("core_app/__pycache__/cli.cpython-311.pyc")


def test_final_stage_is_slim_non_root_with_a_health_check() -> None:
    steps = instructions()
    last = max(stage for *_, stage in steps)
    assert last >= 1, "not a multi-stage build"
    final = [(k, a) for k, a, stage in steps if stage == last]
    final_runs = " ".join(a for k, a in final if k == "RUN")
    for compiler in ("build-essential", "gcc", "libpq-dev"):
        assert compiler not in final_runs, f"{compiler} in the final image"
    users = [a for k, a in final if k == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    health = next(a for k, a in final if k == "HEALTHCHECK")
    assert "/health" in health and "--timeout=2s" in health
    base = next(a for k, a, _ in steps if k == "ARG" and a.startswith("PYTHON_IMAGE="))
    assert base.startswith("PYTHON_IMAGE=python:3.11-slim")


@pytest.mark.parametrize("subcommand", ["worker", "sink", "migrate"])
def test_commands_the_manifests_run_exist(subcommand: str) -> None:
    choices = next(a for a in parser()._actions if a.dest == "command").choices  # type: ignore[union-attr]
    assert subcommand in choices
