"""The /admin/imports page in headless Chromium, against a worker with the security layer on.

The browser is Debian's `chromium`, driven through Debian's `chromium-driver` by Selenium
(`apt-get install -y chromium chromium-driver`; .ci/run installs them, and the test fails rather than
skips without them). The test pastes a JWT into the page, sees a refused URL named by its field,
sees an import from a file server that is down end `failed` with its reason, starts a 5,000-row
Shopify import served by a local file server, waits (on DOM conditions only) for
the WebSocket-fed bar to reach 100 % with status `completed`, checks the error rows and the
past-imports list, and keeps a screenshot in test-artifacts/admin-imports.png.

    .venv/bin/pytest tests/e2e/test_admin_page.py -q
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from core_app.security.principal import EDIT, VIEW
from core_app.settings import Settings
from tests.support.auth import bearer, mint_jwt
from tests.support.browser import open_browser
from tests.support.events import new_merchant
from tests.support.file_server import FileServer
from tests.support.imports import shopify_csv
from tests.support.processes import ARTIFACTS, WorkerProcess

SCREENSHOT = ARTIFACTS / "admin-imports.png"
ROWS, BAD_EVERY = 5000, 250  # 20 bad rows: bad emails, bad numbers, duplicates
DOM_TIMEOUT = 150.0  # seconds for a DOM condition: generous for a loaded 2-core machine
PAGE_FILES = {
    "/admin/imports": "text/html",
    "/admin/imports.js": "text/javascript",
    "/admin/imports.css": "text/css",
    "/admin/admin.js": "text/javascript",  # shared with the customers page
}


@pytest.fixture(scope="module")
async def file_server():
    server = FileServer()
    await server.start()
    yield server
    await server.stop()


@dataclass
class PageResult:
    refusal: str
    failure: str
    import_id: str
    percent: str
    valuenow: str
    status: str
    frames: int
    counts: dict[str, str]
    error_rows: list[tuple[int, str]]
    errors_summary: str
    history_status: str
    console: list[str]


def drive_page(page_url: str, token: str, down_url: str, file_url: str) -> PageResult:
    """The operator's steps in the browser (synchronous: run in a thread, so the test's event loop
    keeps serving the file). Every wait is on a DOM condition."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = open_browser()
    try:
        driver.set_page_load_timeout(60)
        wait = WebDriverWait(driver, DOM_TIMEOUT, poll_frequency=0.2)

        def element(element_id: str) -> Any:
            return driver.find_element(By.ID, element_id)

        def text(element_id: str) -> str:
            return (element(element_id).get_attribute("textContent") or "").strip()

        driver.get(page_url)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        element("token").send_keys(token)  # the merchant field stays empty: taken from the token
        Select(element("source")).select_by_value("shopify")

        # A URL the service refuses: the page shows the answer, naming the field.
        element("file-url").send_keys("ftp://files.example.com/customers.csv")
        element("start").click()
        wait.until(lambda d: element("form-error").is_displayed())
        refusal = text("form-error")
        assert element("file-url").get_attribute("aria-invalid") == "true", refusal

        def start(url: str, previous: str | None) -> str:
            element("file-url").clear()
            element("file-url").send_keys(url)
            element("start").click()
            wait.until(lambda d: element("current").get_attribute("data-import-id") not in (None, previous))
            assert not element("form-error").is_displayed(), text("form-error")
            return element("current").get_attribute("data-import-id")

        # A file server that is down: the import ends `failed`, and the page says why.
        failed_id = start(down_url, None)
        wait.until(lambda d: text("status") == "failed" and element("failure").is_displayed())
        failure = text("failure")
        wait.until(lambda d: element("errors").get_attribute("data-import-id") == failed_id)

        import_id = start(file_url, failed_id)

        wait.until(lambda d: text("status") in ("completed", "failed"))
        status = text("status")
        wait.until(
            lambda d: (
                element("errors").is_displayed()
                and element("errors").get_attribute("data-import-id") == import_id
            )
        )
        rows = driver.find_elements(By.CSS_SELECTOR, "#errors-body tr")
        error_rows = []
        for row in rows:
            cells = [c.get_attribute("textContent") for c in row.find_elements(By.TAG_NAME, "td")]
            error_rows.append((int(cells[0]), cells[1]))
        history_row = f'#history-body tr[data-import-id="{import_id}"]'
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'{history_row}[data-status="{status}"]'))
        console = [f"{entry['level']} {entry['message']}" for entry in driver.get_log("browser")]
        driver.execute_script("window.scrollTo(0, 0)")
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(SCREENSHOT))
        return PageResult(
            refusal=refusal,
            failure=failure,
            import_id=import_id,
            percent=text("percent"),
            valuenow=element("bar").get_attribute("aria-valuenow"),
            status=status,
            frames=int(element("current").get_attribute("data-frames")),
            counts={name: text(name) for name in ("processed", "succeeded", "failed", "total")},
            error_rows=error_rows,
            errors_summary=text("errors-summary"),
            history_status=status,
            console=console,
        )
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "admin-imports-failed.png"))
        (ARTIFACTS / "admin-imports-failed.html").write_text(driver.page_source)
        raise
    finally:
        driver.quit()


@pytest.mark.timeout(600)  # worker start, Chromium start and the import on a loaded machine
async def test_operator_imports_from_the_page_and_watches_it_live(
    secure_worker: WorkerProcess, settings: Settings, file_server: FileServer
) -> None:
    merchant = new_merchant(settings)
    data, bad_rows = shopify_csv(ROWS, bad_every=BAD_EVERY)
    file_url = file_server.add(f"admin-{merchant}.csv", data)
    down_url = file_server.url(f"/down/admin-{merchant}.csv")
    token = mint_jwt(merchant, [EDIT])
    SCREENSHOT.unlink(missing_ok=True)

    page_url = f"{secure_worker.url}/admin/imports"
    result = await asyncio.to_thread(drive_page, page_url, token, down_url, file_url)

    assert result.refusal.startswith("file_url: "), result.refusal
    assert result.failure.startswith("Import failed: download failed after 5 tries"), result.failure
    assert "503" in result.failure, result.failure
    assert result.status == "completed", (result, secure_worker.log_tail())
    assert (result.percent, result.valuenow) == ("100 %", "100")
    assert result.frames >= 1, "the bar was not fed by the WebSocket"
    assert result.counts == {
        "processed": f"{ROWS:,}",
        "succeeded": f"{ROWS - len(bad_rows):,}",
        "failed": f"{len(bad_rows):,}",
        "total": f"{ROWS:,}",
    }
    assert [row for row, _ in result.error_rows] == bad_rows
    assert all(error for _, error in result.error_rows)
    assert any("duplicate email" in error for _, error in result.error_rows)
    assert result.errors_summary.startswith(f"{len(bad_rows)} row(s) refused")
    assert not [line for line in result.console if "Content Security Policy" in line], result.console
    # Only the refused start (a GraphQL error answer) and the favicon may show as failed loads.
    unexpected = [
        line
        for line in result.console
        if "SEVERE" in line and "/graphql" not in line and "favicon.ico" not in line
    ]
    assert not unexpected, result.console
    assert file_server.requests[f"/files/admin-{merchant}.csv"] >= 1
    assert SCREENSHOT.stat().st_size > 10_000


async def test_only_the_page_files_are_public_and_the_api_still_checks_the_tenant(
    secure_worker: WorkerProcess, settings: Settings
) -> None:
    merchant, other = new_merchant(settings), new_merchant(settings)
    async with aiohttp.ClientSession() as http:
        for path, content_type in PAGE_FILES.items():
            for method in ("GET", "HEAD"):
                async with http.request(method, f"{secure_worker.url}{path}") as response:
                    assert response.status == 200, (method, path)
                    assert response.content_type == content_type
                    policy = response.headers["Content-Security-Policy"]
                    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
                    assert "frame-ancestors 'none'" in policy
                    assert response.headers["X-Content-Type-Options"] == "nosniff"
        async with http.get(f"{secure_worker.url}/admin/imports") as response:
            html = await response.text()
        assert not re.search(r"<script(?![^>]*\ssrc=)", html), "inline script"
        assert not re.search(r"\s(style|on[a-z]+)=", html), "inline style or handler"

        # Anything else under /admin, or another method, needs credentials as before.
        for method, path in [
            ("POST", "/admin/imports"),
            ("PUT", "/admin/imports.js"),
            ("GET", "/admin/imports/"),
            ("GET", "/admin/other"),
            ("GET", f"/core/v1/imports?merchant_id={merchant}"),
        ]:
            async with http.request(method, f"{secure_worker.url}{path}") as response:
                assert response.status == 401, (method, path, response.status)

        # What the page calls: GraphQL with the operator's Bearer token, tenant-checked.
        query = {"query": "query($m: ID!) { getImportLogs(merchant_id: $m) { import_id } }"}
        anonymous = query | {"variables": {"m": merchant}}
        async with http.post(f"{secure_worker.url}/graphql", json=anonymous) as response:
            assert response.status == 401
        token = mint_jwt(merchant, [VIEW])
        async with http.post(
            f"{secure_worker.url}/graphql", json=query | {"variables": {"m": other}}, headers=bearer(token)
        ) as response:
            answer = await response.json()
        assert answer["errors"][0]["extensions"]["code"] == "FORBIDDEN", answer

        # And the live stream, authenticated by its first frame, refuses another merchant's token.
        async with http.ws_connect(f"{secure_worker.url}/core/v1/updates/stream?merchant_id={other}") as ws:
            await ws.send_json({"type": "connection_init", "payload": {"token": token}})
            message = await ws.receive(timeout=30)
        assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 4403, message
