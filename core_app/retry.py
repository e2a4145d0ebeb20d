"""Retry policy for transient infrastructure failures (PostgreSQL, Redis, network).

An agent that hits one waits and retries with jittered backoff, forever: its partition lags (and the
lag metrics show it) but no event is skipped or lost.
"""

from __future__ import annotations

import logging

import psycopg2
import redis.exceptions
from tenacity import AsyncRetrying, before_sleep_log, retry_if_exception_type, wait_exponential_jitter

from core_app.logs import one_line

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = (
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    TimeoutError,
)


def infra_retry(max_wait: float = 10.0) -> AsyncRetrying:
    """Call as `await infra_retry()(async_fn, *args)`.

    `async_fn` must be an `async def`: tenacity calls anything else synchronously, and a plain
    function that merely returns a coroutine (redis-py's commands) would never be awaited.
    """
    return AsyncRetrying(
        retry=retry_if_exception_type(TRANSIENT_ERRORS),
        wait=wait_exponential_jitter(initial=0.2, max=max_wait),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )


class FailureStreak:
    """How a loop that retries every second logs a failure that lasts: the first with its
    traceback, then one line every `summary_every` failures, and one line when it works again."""

    def __init__(self, logger: logging.Logger, what: str, summary_every: int = 30) -> None:
        self.logger, self.what, self.summary_every = logger, what, summary_every
        self.failures = 0

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.failures == 1:
            self.logger.error("%s failed; retrying", self.what, exc_info=exc)
        elif self.failures % self.summary_every == 0:
            self.logger.warning(
                "%s still failing: %s", self.what, one_line(exc), extra={"failures": self.failures}
            )

    def succeeded(self) -> None:
        if self.failures:
            self.logger.info("%s works again", self.what, extra={"failures": self.failures})
            self.failures = 0
