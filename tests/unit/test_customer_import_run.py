"""ImportRun, the coordinator, over a fake worker: a whole run to `completed` or `failed`."""

from __future__ import annotations

import asyncio
from typing import Any

from core_app.customer_import.job import ImportJob
from core_app.customer_import.run import MAX_RUNS, ImportRun
from core_app.domain.customer_import import new_log_state
from core_app.domain.email import email_hash
from tests.support.customer_import import SETTINGS, a_job, custom_csv
from tests.unit.fakes import FakeCustomerRows, FakeJobIO

KEY = SETTINGS.email_hash_key.get_secret_value()


def fresh_state(job: ImportJob) -> dict[str, Any]:
    return new_log_state(job.import_id, job.merchant_id, job.source, job.file_url, job.created_at)


async def run(io: FakeJobIO, runs: int = 0) -> tuple[dict[str, Any], FakeJobIO]:
    job = a_job()
    state = fresh_state(job) | {"runs": runs}
    final = await asyncio.wait_for(ImportRun(job, state, io).run(), 5)
    return final, io


async def test_a_run_creates_new_customers_updates_known_ones_and_completes() -> None:
    emails = [f"c{n}@example.com" for n in range(7)] + ["broken"]
    known = {email_hash("c0@example.com", KEY): "known-0", email_hash("c5@example.com", KEY): "known-5"}
    final, io = await run(FakeJobIO(SETTINGS, custom_csv(emails), FakeCustomerRows(customers=dict(known))))
    assert final["status"] == "completed" and final["runs"] == 1
    assert final["record_count"] == 7 and final["error_count"] == 1
    assert len(io.created) == 5 and sum(len(c["customers"]) for _, c in io.commands) == 2
    last = io.progress[-1]
    assert last["status"] == "completed" and last["created"] == 5 and last["updated"] == 2
    assert last["total"] == last["processed"] == 8
    versions = [state["version"] for state in io.saved]
    assert versions == sorted(versions) and io.saved[-1] == final


async def test_a_run_for_a_merchant_with_imports_disabled_fails() -> None:
    final, io = await run(FakeJobIO(SETTINGS, custom_csv(["a@example.com"]), enabled=False))
    assert final["status"] == "failed"
    assert final["failure_reason"] == "customer imports are disabled for this merchant"
    assert io.opened == 0 and io.created == []


async def test_a_job_interrupted_too_often_fails() -> None:
    final, io = await run(FakeJobIO(SETTINGS, custom_csv(["a@example.com"])), runs=MAX_RUNS)
    assert final["status"] == "failed" and "interrupted 10 times" in str(final["failure_reason"])
    assert io.opened == 0


async def test_updates_the_owners_do_not_confirm_fail_the_run() -> None:
    known = {email_hash("a@example.com", KEY): "known"}
    io = FakeJobIO(SETTINGS, custom_csv(["a@example.com"]), FakeCustomerRows(customers=known), confirm=False)
    final, _ = await run(io)
    assert final["status"] == "failed" and "not confirmed by their owners" in str(final["failure_reason"])


async def test_a_database_that_stays_down_fails_the_run_with_the_reason() -> None:
    io = FakeJobIO(SETTINGS, custom_csv(["a@example.com"]), FakeCustomerRows(fail_times=100))
    final, _ = await run(io)
    assert final["status"] == "failed"
    assert str(final["failure_reason"]).startswith("database unavailable after 3 tries")


async def test_a_broken_download_resumes_and_completes() -> None:
    io = FakeJobIO(SETTINGS, custom_csv([f"c{n}@example.com" for n in range(20)]), breaks=[2])
    final, _ = await run(io)
    assert final["status"] == "completed" and final["record_count"] == 20 and io.opened == 2


async def test_cancelling_a_run_leaves_it_resumable() -> None:
    job = a_job()
    io = FakeJobIO(SETTINGS, custom_csv(["a@example.com"]), confirm=False)
    io.rows.customers[email_hash("a@example.com", KEY)] = "known"
    task = asyncio.create_task(ImportRun(job, fresh_state(job), io).run())
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and io.saved[-1]["status"] == "processing"
