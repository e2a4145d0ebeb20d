"""Whether the import agent runs a job it receives, and the log state it runs it from."""

from __future__ import annotations

from typing import Any

from core_app.customer_import.job import ImportJob
from core_app.domain.customer_import import FINAL_STATUSES, new_log_state, parse_file_url


def admit(job: ImportJob, state: dict[str, Any] | None, running: bool) -> dict[str, Any] | None:
    """None for a job to skip: a replayed one (its log is final) or one already running here
    (resumed and re-delivered at once). Else the state to run it from: the table's, or a new log
    (a new object, which the agent writes to the table first)."""
    if state is not None and state.get("status") in FINAL_STATUSES:
        return None
    if running:
        return None
    if state is not None:
        return state
    public_url = parse_file_url(job.file_url).public
    fresh = new_log_state(job.import_id, job.merchant_id, job.source, public_url, job.created_at)
    # The full URL (a signed URL's secret included) stays in internal topics, out of PostgreSQL.
    return fresh | {"version": 1, "requested_at_ms": job.requested_at_ms, "fetch_url": job.file_url}
