"""The worker's wiring lives in core_app/bootstrap.py (the composition root); this name stays for
the callers that import `core_app.main` (the CLI's `core worker`, tests)."""

from __future__ import annotations

from core_app.bootstrap import AGENTS, TABLES, app, build

__all__ = ["AGENTS", "TABLES", "app", "build"]
