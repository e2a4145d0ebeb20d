"""The size limits of issue 16: no production file over 400 lines, no function over 60 lines.

Long files and functions are where concerns pile up; the limits keep each module readable in one
sitting (docs/decisions.md D193). Generated code (protobuf stubs) is exempt: nobody edits it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core_app", "agents", "views", "tables", "scripts")
GENERATED = tuple(f"core_app/{p}/generated/" for p in ("rpc", "security", "adminfeatures"))
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def production_files() -> list[Path]:
    files = [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    return [path for path in files if not str(path.relative_to(ROOT)).startswith(GENERATED)]


def long_functions(path: Path) -> list[str]:
    """`path:line name (n lines)` for each function or method longer than the limit, decorators
    and docstring included (what a reader has to hold)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - first + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_the_walk_finds_the_packages() -> None:
    assert len(production_files()) > 50


def test_no_production_file_over_400_lines() -> None:
    too_long = []
    for path in production_files():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_FILE_LINES:
            too_long.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    assert not too_long, "files over 400 lines:\n" + "\n".join(too_long)


def test_no_function_over_60_lines() -> None:
    too_long = [found for path in production_files() for found in long_functions(path)]
    assert not too_long, "functions over 60 lines:\n" + "\n".join(too_long)
