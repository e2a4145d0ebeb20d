"""Session fixtures: a throwaway PostgreSQL database, a Tansu broker on a free port, the dev
schema registry, and a per-session Redis key prefix. Services are real; nothing is mocked."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg2
import pytest

from core_app.events.codec import EventCodec
from core_app.settings import Settings
from tests.support.auth import api_credentials, secure_broker, secure_worker  # noqa: F401  (fixtures)
from tests.support.file_server import FileServer
from tests.support.imports import import_root
from tests.support.pii import secure_producer  # noqa: F401  (a fixture)
from tests.support.processes import free_port, running_tansu
from tests.support.timeline import pytest_runtest_protocol  # noqa: F401  (a hook: CORE_TEST_TIMELINE=1)

RUN_ID = uuid.uuid4().hex[:8]
_containers: list[object] = []


def pytest_configure(config: pytest.Config) -> None:
    """CORE_TEST_DOCKER=1 runs PostgreSQL and Redis in containers (needs Docker and the
    `docker` extra); by default the tests use the local services."""
    if os.environ.get("CORE_TEST_DOCKER") != "1":
        return
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    postgres = PostgresContainer("postgres:15", username="postgres", password="postgres").start()
    redis = RedisContainer("redis:7").start()
    _containers.extend([postgres, redis])
    os.environ.update(
        {
            "CORE_DB_HOST": postgres.get_container_host_ip(),
            "CORE_DB_PORT": str(postgres.get_exposed_port(5432)),
            "CORE_DB_PASSWORD": "postgres",
            "REDIS_HOST": redis.get_container_host_ip(),
            "REDIS_PORT": str(redis.get_exposed_port(6379)),
        }
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    for container in reversed(_containers):
        container.stop()  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The chaos run's report (tests/chaos/test_chaos.py: seed, nemeses, the verifier's line) in every
    run's output, passed or failed; it travels as a user property, so it survives xdist."""
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            for name, value in getattr(report, "user_properties", []):
                if name == "chaos_report" and report.when == "call":
                    terminalreporter.write_sep("-", f"chaos run ({outcome})")
                    terminalreporter.write_line(str(value))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath) or "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def data_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="core-tests-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def db_name() -> Iterator[str]:
    """A throwaway database, dropped at the end of the session."""
    name = f"core_test_{RUN_ID}"
    yield name
    admin = psycopg2.connect(Settings(core_db_name="postgres").db_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="session")
def settings(db_name: str, data_root: Path) -> Settings:
    from core_app.migrate import migrate

    test_settings = Settings(
        core_env="test",
        core_db_name=db_name,
        redis_key_prefix=f"test:{RUN_ID}:",
        data_dir=data_root / "data",
        # Every test calls from 127.0.0.1 and many fail authentication on purpose: the per-address
        # limit (D183) is on only where a test is about it.
        auth_failure_limit=0,
    )
    migrate(test_settings)
    return test_settings


@pytest.fixture(scope="session")
def tansu(data_root: Path) -> Iterator[str]:
    """A Tansu broker (in-memory) on a free port; yields the KAFKA_BROKER URL."""
    with running_tansu(data_root / "tansu.log") as url:
        yield url


@pytest.fixture(scope="session")
async def registry_url(settings: Settings) -> AsyncIterator[str]:
    from core_app.schema_registry.run import start_registry

    port = free_port()
    runner = await start_registry(settings, "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture(scope="session")
async def codec(registry_url: str, settings: Settings) -> EventCodec:
    """The service's own Avro codec, with every contract registered in the test registry."""
    event_codec = EventCodec(registry_url, settings.avro_dir)
    await event_codec.register_all()
    return event_codec


@pytest.fixture(scope="session")
def worker_env(settings: Settings, tansu: str, registry_url: str, data_root: Path) -> dict[str, str]:
    """Environment for `core worker` subprocesses, tuned for Tansu (see docs/decisions.md)."""
    return {
        "CORE_ENV": "test",
        # Suites that are not about security run without it until they use tests/support/auth.py's
        # credentials; the security suites start their own workers with it on.
        "AUTH_ENABLED": "false",
        "AUTH_FAILURE_LIMIT": "0",  # see `settings` above
        "CORE_DB_NAME": settings.core_db_name,
        "KAFKA_BROKER": tansu,
        "SCHEMA_REGISTRY_URL": registry_url,
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "DATA_DIR": str(data_root / "data"),
        "KAFKA_FETCH_MAX_WAIT_MS": "100",
        "KAFKA_SESSION_TIMEOUT": "10",
        "KAFKA_REBALANCE_TIMEOUT": "5",
        "KAFKA_HEARTBEAT_INTERVAL": "1",
        "KAFKA_TOPIC_PARTITIONS": "4",
        "TABLE_STANDBY_REPLICAS": "0",
        "LOG_JSON": "false",
        "LOG_LEVEL": os.environ.get("TEST_WORKER_LOG_LEVEL", "INFO"),
        "SHUTDOWN_TIMEOUT": "10",
        "PYTHONUNBUFFERED": "1",
        # Imports: the tests' file server is on 127.0.0.1 (only that address is opened; the rest of
        # the private ranges stay refused), file:// under the session's import directory.
        "IMPORT_PRIVATE_ALLOWLIST": "127.0.0.1/32",
        "IMPORT_FILE_ROOT": str(import_root(data_root)),
        "IMPORT_MAX_FILE_MB": "32",
        "IMPORT_RETRY_BASE_SECONDS": "0.1",
        "IMPORT_RETRY_MAX_SECONDS": "1",
    }


@pytest.fixture(scope="session")
async def file_server() -> AsyncIterator[FileServer]:
    """An HTTP server of import files (tests/support/file_server.py), one per session."""
    server = FileServer()
    await server.start()
    yield server
    await server.stop()
