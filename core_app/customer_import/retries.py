"""Retries of one import run: transient download, database and broker failures are retried
IMPORT_RETRY_ATTEMPTS times (5) with exponential backoff and full jitter; then the import fails with
the reason (ImportFailed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg2
from aiokafka.errors import KafkaError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from core_app.customer_import import metrics
from core_app.customer_import.fetch import FetchError
from core_app.domain.customer_import import ImportFileError
from core_app.retry import TRANSIENT_ERRORS
from core_app.settings import Settings

T = TypeVar("T")


class ImportFailed(Exception):
    """The import ends `failed` with this reason."""


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, (*TRANSIENT_ERRORS, KafkaError))


class Retries:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def retrying(self, retry_on: Callable[[BaseException], bool], stage: str) -> AsyncRetrying:
        def count(_state: RetryCallState) -> None:
            metrics.import_retries.labels(stage).inc()

        return AsyncRetrying(
            stop=stop_after_attempt(self.settings.import_retry_attempts),
            wait=wait_random_exponential(
                multiplier=self.settings.import_retry_base_seconds, max=self.settings.import_retry_max_seconds
            ),
            retry=retry_if_exception(retry_on),
            before_sleep=count,
            reraise=True,
        )

    async def call(self, stage: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call` retried on transient database or broker errors; then ImportFailed with the reason."""
        retrying = self.retrying(_transient, stage)

        async def attempt() -> T:  # tenacity awaits only coroutine functions
            return await call()

        try:
            return await retrying(attempt)
        except (*TRANSIENT_ERRORS, KafkaError) as exc:
            tries = retrying.statistics.get("attempt_number", 1)
            raise ImportFailed(f"{stage} unavailable after {tries} tries: {reason(exc)}") from None
        except psycopg2.Error as exc:
            raise ImportFailed(f"{stage} refused a batch: {reason(exc)}") from None

    async def download(self, read_once: Callable[[], Awaitable[None]]) -> None:
        """`read_once` retried on a transient FetchError (it skips the rows already handled)."""
        retrying = self.retrying(lambda exc: isinstance(exc, FetchError) and exc.transient, "download")
        try:
            await retrying(read_once)
        except FetchError as exc:
            if not exc.transient:
                raise ImportFailed(f"download failed: {exc.reason}") from None
            tries = retrying.statistics.get("attempt_number", 1)
            raise ImportFailed(f"download failed after {tries} tries: {exc.reason}") from None
        except ImportFileError as exc:
            raise ImportFailed(f"the file cannot be imported: {exc}") from None


def reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__
