"""Read-replica routing without PostgreSQL: settings, WAL positions, and the choice when no replica
is configured or none answers (the real replica is in tests/integration/test_read_replica.py)."""

from __future__ import annotations

from typing import Any

import pytest

from core_app.read_replicas import ReadRouter, parse_lsn, replica_name
from core_app.runtime import read_router
from core_app.settings import ConfigError, Settings, load_settings


def test_wal_positions_compare_as_numbers() -> None:
    assert parse_lsn("0/0") == 0 and parse_lsn(None) == 0
    assert parse_lsn("16/B374D848") == (0x16 << 32) + 0xB374D848
    assert parse_lsn("1/0") > parse_lsn("0/FFFFFFFF")


def test_read_urls_make_one_replica_each_named_without_password() -> None:
    settings = Settings(
        core_db_read_urls="postgresql://u:secret@replica-a:5433/core, postgresql://replica-b/core",
        core_db_read_max_lag=2.5,
    )
    router = read_router(settings, primary=object())  # type: ignore[arg-type]
    assert [r.name for r in router.replicas] == ["replica-a:5433", "replica-b:5432"]
    assert router.max_lag == 2.5
    assert "secret" not in replica_name(settings.db_read_dsns[0])


def test_a_read_url_that_is_not_postgresql_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORE_DB_READ_URLS", "redis://replica:6379")
    with pytest.raises(ConfigError, match="CORE_DB_READ_URLS"):
        load_settings()


async def test_without_replicas_every_read_runs_on_the_primary() -> None:
    primary: Any = object()
    router = ReadRouter(primary, [], _never_opened, max_lag=1, check_interval=1)
    assert await router.run("m", _echo) is primary
    await router.wrote("m")  # nothing to remember without replicas (and no query on the primary)


async def test_a_replica_that_cannot_be_reached_sends_the_read_to_the_primary() -> None:
    primary: Any = object()
    router = ReadRouter(primary, ["postgresql://replica:5432/core"], _refused, max_lag=1, check_interval=60)
    assert await router.run("m", _echo) is primary
    assert router.replicas[0].reason == "down" and not router.replicas[0].serving
    assert await router.run("m", _echo) is primary  # down until its next check, no new attempt
    assert _refused.calls == 1  # type: ignore[attr-defined]


async def _echo(pool: Any) -> Any:
    return pool


async def _never_opened(dsn: str) -> Any:
    raise AssertionError("no replica to open")


async def _refused(dsn: str) -> Any:
    _refused.calls += 1  # type: ignore[attr-defined]
    raise OSError("connection refused")


_refused.calls = 0  # type: ignore[attr-defined]
