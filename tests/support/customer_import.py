"""Shared pieces of the import run's unit tests: settings that retry at once, a job, a CSV."""

from __future__ import annotations

import uuid

from core_app.customer_import.job import ImportJob
from core_app.customer_import.retries import Retries
from core_app.customer_import.tally import Tally
from core_app.domain.customer_import import ErrorLog, ImportProgress
from core_app.settings import Settings

SETTINGS = Settings().model_copy(
    update={
        "import_retry_attempts": 3,
        "import_retry_base_seconds": 0.001,
        "import_retry_max_seconds": 0.002,
        "import_batch_size": 3,
        "import_progress_interval": 0.05,
        "import_update_timeout": 0.1,
    }
)


def a_job(source: str = "custom") -> ImportJob:
    return ImportJob(
        import_id=str(uuid.uuid4()),
        merchant_id=str(uuid.uuid4()),
        source=source,
        file_url="https://files.example.com/customers.csv",
        created_at="2026-01-01T00:00:00.000Z",
        requested_at_ms=1_767_225_600_000,
    )


def a_tally(job: ImportJob) -> Tally:
    return Tally(ImportProgress(job.import_id, job.merchant_id, job.source, errors=ErrorLog(100)))


def retries() -> Retries:
    return Retries(SETTINGS)


def custom_csv(emails: list[str]) -> bytes:
    return ("email,points\n" + "".join(f"{email},{n}\n" for n, email in enumerate(emails))).encode()
