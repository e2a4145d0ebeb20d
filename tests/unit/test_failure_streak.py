"""core_app/retry.FailureStreak: a loop that retries every second logs an outage once with its
traceback, then a line every `summary_every` failures, then once when it works again."""

from __future__ import annotations

import logging

import pytest

from core_app.retry import FailureStreak


def test_an_outage_logs_a_traceback_then_summaries_then_the_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.streak")
    streak = FailureStreak(logger, "retrying parked events", summary_every=30)
    with caplog.at_level(logging.INFO, logger="test.streak"):
        for _ in range(65):
            streak.failed(ConnectionError("connection refused"))
        streak.succeeded()
        streak.succeeded()  # nothing more to say
    records = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert records == [
        ("ERROR", "retrying parked events failed; retrying", True),
        ("WARNING", "retrying parked events still failing: ConnectionError: connection refused", False),
        ("WARNING", "retrying parked events still failing: ConnectionError: connection refused", False),
        ("INFO", "retrying parked events works again", False),
    ]
    assert caplog.records[-1].failures == 65  # type: ignore[attr-defined]


def test_a_new_outage_after_a_recovery_logs_its_traceback_again(caplog: pytest.LogCaptureFixture) -> None:
    streak = FailureStreak(logging.getLogger("test.streak2"), "x")
    with caplog.at_level(logging.INFO, logger="test.streak2"):
        streak.failed(OSError("a"))
        streak.succeeded()
        streak.failed(OSError("b"))
    assert [r.exc_info is not None for r in caplog.records] == [True, False, True]
