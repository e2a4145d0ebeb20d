"""Headless Chromium for the admin page tests: Debian's `chromium` driven through Debian's
`chromium-driver` by Selenium (`apt-get install -y chromium chromium-driver`; .ci/run installs them).
The tests fail, rather than skip, without them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest


def chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if browser is None or not Path(driver).exists():
        pytest.fail(
            "headless Chromium is needed: apt-get install -y chromium chromium-driver "
            "(Debian packages; .ci/run installs them)"
        )
    return browser, driver


def open_browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    options = Options()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1280,1800",
    ):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run as root inside its sandbox
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager downloads nothing.
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))
