"""`core dev` end to end: the embedded stack comes up on a fresh broker, answers /health, and one
Ctrl-C stops every child it started; with `--tls` the broker port speaks only TLS (stunnel in front of
Tansu, a dev CA under var/tls) and the worker reaches it over TLS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from core_app.kafka_security import client_options
from core_app.settings import Settings
from tests.support.processes import ARTIFACTS, eventually, free_port


def processes_with_marker(marker: str) -> list[int]:
    """PIDs whose environment carries `marker` (children of core dev inherit it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


async def broker_speaks_only_tls(settings: Settings, port: int, ca: Path) -> None:
    """A plaintext client is refused on the dev broker port; one trusting the dev CA lists topics."""
    plaintext = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=5000)
    with pytest.raises(KafkaError):
        await plaintext.start()
    await plaintext.close()
    tls = settings.model_copy(
        update={
            "kafka_broker": f"kafka://127.0.0.1:{port}",
            "kafka_security_protocol": "SSL",
            "kafka_ssl_cafile": ca,
        }
    )
    admin = AIOKafkaAdminClient(**client_options(tls))
    await admin.start()
    try:
        assert f"{settings.service_name}-customers-changelog" in await admin.list_topics()
    finally:
        await admin.close()


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "tls"])
async def test_core_dev_runs_the_stack_and_ctrl_c_stops_it(
    settings: Settings, data_root: Path, tls: bool
) -> None:
    marker = f"CORE_DEV_TEST_MARKER={uuid.uuid4().hex}"
    data_dir = data_root / f"dev-data-{tls}"
    stale = data_dir / "worker-dev" / "left-by-an-earlier-broker"
    stale.parent.mkdir(parents=True)
    stale.write_text("stale RocksDB state")
    http_port, broker_port = free_port(), free_port()
    env = {
        key: value for key, value in os.environ.items() if key not in {"KAFKA_BROKER", "SCHEMA_REGISTRY_URL"}
    } | {
        "CORE_DB_NAME": settings.core_db_name,
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "DATA_DIR": str(data_dir),
        "WORKER_ID": "worker-dev",
        "HTTP_PORT": str(http_port),
        "GRPC_PORT": str(free_port()),
        "DEV_BROKER_PORT": str(broker_port),
        "DEV_REGISTRY_PORT": str(free_port()),
        "KAFKA_TOPIC_PARTITIONS": "2",
        "TABLE_STANDBY_REPLICAS": "0",
        marker.split("=")[0]: marker.split("=")[1],
    }
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "core-dev.log", "wb") as log:
        dev = subprocess.Popen(
            [sys.executable, "-m", "core_app", "dev", *(["--tls"] if tls else [])],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        async def healthy() -> bool:
            assert dev.poll() is None, (ARTIFACTS / "core-dev.log").read_text()[-3000:]
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{http_port}/health") as response,
            ):
                return response.status == 200 and await response.json() == {"status": "UP"}

        await eventually(healthy, timeout=120, interval=0.5)
        assert not stale.exists()
        # core dev, tansu, registry, worker (and stunnel)
        assert len(processes_with_marker(marker)) >= (5 if tls else 4)
        if tls:
            await broker_speaks_only_tls(settings, broker_port, data_dir.parent / "tls" / "ca.pem")

        dev.send_signal(signal.SIGINT)
        assert dev.wait(60) == 0
        assert processes_with_marker(marker) == []
    finally:
        if dev.poll() is None:
            dev.kill()
        for pid in processes_with_marker(marker):
            os.kill(pid, signal.SIGKILL)
