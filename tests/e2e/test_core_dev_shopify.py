"""`core dev --fake-shopify`: a newcomer installs the app into a fake shop with the fake's "Install
app" button, and the merchant exists with its token; one Ctrl-C stops every child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp

from core_app.settings import Settings
from tests.e2e.test_core_dev import processes_with_marker
from tests.support.db import pg
from tests.support.processes import ARTIFACTS, eventually, free_port


async def test_core_dev_with_the_fake_shop_installs_a_shop(settings: Settings, data_root: Path) -> None:
    marker = f"CORE_DEV_SHOPIFY_MARKER={uuid.uuid4().hex}"
    http_port, fake_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"KAFKA_BROKER", "SCHEMA_REGISTRY_URL"}} | {
        "CORE_DB_NAME": settings.core_db_name,
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "DATA_DIR": str(data_root / "dev-shopify-data"),
        "WORKER_ID": "worker-dev-shopify",
        "HTTP_PORT": str(http_port),
        "GRPC_PORT": str(free_port()),
        "DEV_BROKER_PORT": str(free_port()),
        "DEV_REGISTRY_PORT": str(free_port()),
        "DEV_FAKE_SHOPIFY_PORT": str(fake_port),
        "KAFKA_TOPIC_PARTITIONS": "2",
        "TABLE_STANDBY_REPLICAS": "0",
        "AUTH_ENABLED": "true",
        marker.split("=")[0]: marker.split("=")[1],
    }
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "core-dev-shopify.log"
    with open(log, "wb") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "core_app", "dev", "--fake-shopify"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    shop = f"newcomer-{uuid.uuid4().hex[:6]}.myshopify.com"
    try:

        async def ready() -> bool:
            assert dev.poll() is None, log.read_text()[-3000:]
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{http_port}/ready") as r:
                return r.status == 200

        await eventually(ready, timeout=150, interval=0.5)
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{fake_port}/_fake/shops/{shop}/install"
            for _hop in range(4):  # button -> /shopify/install -> grant screen -> /shopify/callback
                async with http.get(url, allow_redirects=False) as r:
                    assert r.status == 302, (url, r.status, await r.text())
                    url = r.headers["Location"]
        assert url == f"http://127.0.0.1:{fake_port}/shops/{shop}/admin/apps/dev-shopify-key"
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT status, token_sealed IS NOT NULL FROM merchants WHERE shop_domain = %s", (shop,)
            )
            assert cur.fetchone() == ("installed", True)
        dev.send_signal(signal.SIGINT)
        assert dev.wait(60) == 0
        assert processes_with_marker(marker) == []
    finally:
        if dev.poll() is None:
            dev.kill()
        for pid in processes_with_marker(marker):
            os.kill(pid, signal.SIGKILL)
