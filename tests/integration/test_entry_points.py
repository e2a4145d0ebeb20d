"""The installed entry points run as processes: `core` exits 2 with one line on bad configuration,
the image's entry point is `core worker`, and `core fake-shopify` serves a signed install link.

They start real interpreters, so they sit here rather than in the fast unit suite (`make unit`)."""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import urlsplit

import aiohttp

from core_app.domain.shopify import verify_query
from core_app.settings import DEV_SHOPIFY_API_SECRET
from tests.support.image import BIN, entry_command
from tests.support.processes import free_port, wait_for_port


def test_cli_prints_one_line_and_exits_2_on_bad_config() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "core_app", "migrate"],
        env={"PATH": "/usr/bin:/bin", "CORE_DB_PORT": "99999"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "CORE_DB_PORT" in lines[0]


def test_entry_point_resolves_to_core_worker_in_the_venv() -> None:
    command = entry_command()
    assert command == ["core", "worker"]
    script = BIN / command[0]
    assert script.exists(), f"{script} missing: is the package installed?"
    result = subprocess.run([str(script), *command[1:], "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "usage: core worker" in result.stdout


async def test_core_fake_shopify_runs_and_its_install_button_signs_the_app_link() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "core_app", "fake-shopify", "--port", str(port), "--customers", "10"],
        env={"PATH": "/usr/bin:/bin", "SHOPIFY_APP_URL": "http://app.test:8080", "LOG_JSON": "false"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=30)
        url = f"http://127.0.0.1:{port}/_fake/shops/demo.myshopify.com/install"
        async with aiohttp.ClientSession() as http, http.get(url, allow_redirects=False) as r:
            location = urlsplit(r.headers["Location"])
        assert (location.netloc, location.path) == ("app.test:8080", "/shopify/install")
        assert verify_query(DEV_SHOPIFY_API_SECRET, location.query)["shop"] == "demo.myshopify.com"
    finally:
        process.terminate()
        process.wait(10)
