"""The import agent's decision: run a job, and from which log state, or skip it."""

from __future__ import annotations

from core_app.customer_import.admission import admit
from tests.support.customer_import import a_job


def test_a_new_job_runs_from_a_new_log_that_keeps_the_secret_url_internal() -> None:
    job = a_job()
    job = type(job)(**{**job.__dict__, "file_url": job.file_url + "?sig=secret"})
    state = admit(job, None, running=False)
    assert state is not None and state["status"] == "pending" and state["version"] == 1
    assert state["file_url"] == "https://files.example.com/customers.csv"
    assert state["fetch_url"].endswith("?sig=secret") and state["requested_at_ms"] == job.requested_at_ms


def test_an_interrupted_job_resumes_from_its_state() -> None:
    state = {"status": "processing", "runs": 2}
    assert admit(a_job(), state, running=False) is state


def test_a_replayed_job_of_a_finished_import_is_skipped() -> None:
    assert admit(a_job(), {"status": "completed"}, running=False) is None
    assert admit(a_job(), {"status": "failed"}, running=False) is None


def test_a_job_already_running_here_is_skipped() -> None:
    assert admit(a_job(), {"status": "processing"}, running=True) is None
    assert admit(a_job(), None, running=True) is None
