"""The /admin/customers page in headless Chromium, against a worker with the security layer on.

The operator pastes a JWT, filters by segment (every row shown is in it, the counts line names each
segment), searches one customer by its exact email, opens its timeline and reads its changes with
their reasons, newest first; the page keeps a screenshot in test-artifacts/admin-customers.png.
The page's files are public and static; what it shows comes from GraphQL, checked per call.

    .venv/bin/pytest tests/e2e/test_admin_customers_page.py -q
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from core_app.domain.segments import segment_of
from core_app.events.codec import EventCodec
from core_app.security.principal import EDIT, VIEW
from core_app.settings import Settings
from tests.support.auth import create_api_credentials, mint_jwt, signed_session
from tests.support.browser import open_browser
from tests.support.customer_lists import THRESHOLDS, insert_rows, random_rows, set_thresholds
from tests.support.events import at, new_merchant, points, produce, rfm
from tests.support.processes import ARTIFACTS, WorkerProcess, eventually

SCREENSHOT = ARTIFACTS / "admin-customers.png"
DOM_TIMEOUT = 120.0


@dataclass
class Seen:
    loyal_rows: list[str]
    counts: str
    found: list[str]
    entries: list[tuple[int, str, str]]  # (version, kind, reason), as listed
    summary: str
    erased_badge: bool
    console: list[str]


def drive_page(page_url: str, token: str, email: str) -> Seen:
    """The operator's steps (synchronous: run in a thread); every wait is on a DOM condition."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = open_browser()
    try:
        driver.set_page_load_timeout(60)
        wait = WebDriverWait(driver, DOM_TIMEOUT, poll_frequency=0.2)
        element = lambda element_id: driver.find_element(By.ID, element_id)  # noqa: E731

        driver.get(page_url)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        element("token").send_keys(token)
        Select(element("segment")).select_by_value("loyal")
        element("search").click()
        wait.until(lambda d: element("results").get_attribute("data-loaded") not in (None, ""))
        wait.until(lambda d: element("counts").is_displayed())
        while element("more").is_displayed():  # every page of the segment
            shown = element("results").get_attribute("data-loaded")
            element("more").click()
            wait.until(lambda d, s=shown: element("results").get_attribute("data-loaded") != s)
        rows = driver.find_elements(By.CSS_SELECTOR, "#results-body tr")
        loyal_rows = [row.get_attribute("data-segment") or "" for row in rows]
        counts = element("counts").get_attribute("textContent") or ""

        Select(element("segment")).select_by_value("")
        element("email").send_keys(email)
        element("search").click()
        wait.until(lambda d: element("results").get_attribute("data-loaded") == "1")
        found = [
            r.get_attribute("data-customer-id")
            for r in driver.find_elements(By.CSS_SELECTOR, "#results-body tr")
        ]
        driver.find_element(By.CSS_SELECTOR, "#results-body tr button").click()
        wait.until(lambda d: element("timeline").get_attribute("data-loaded") not in (None, ""))
        entries = []
        for item in driver.find_elements(By.CSS_SELECTOR, "#timeline-entries li"):
            reason = item.find_element(By.CLASS_NAME, "reason").get_attribute("textContent") or ""
            entries.append((int(item.get_attribute("data-version")), item.get_attribute("data-kind"), reason))
        summary = element("timeline-summary").get_attribute("textContent") or ""
        erased_badge = element("timeline-redacted").is_displayed()
        console = [f"{entry['level']} {entry['message']}" for entry in driver.get_log("browser")]
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(SCREENSHOT))
        return Seen(loyal_rows, counts, found, entries, summary, erased_badge, console)
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "admin-customers-failed.png"))
        (ARTIFACTS / "admin-customers-failed.html").write_text(driver.page_source)
        raise
    finally:
        driver.quit()


async def timeline_length(worker: WorkerProcess, settings: Settings, merchant: str, customer: str) -> int:
    async with signed_session(create_api_credentials(settings, merchant, [VIEW])) as http:
        url = f"{worker.url}/core/v1/customers/{customer}/timeline"
        async with http.get(url, params={"merchant_id": merchant}) as response:
            return len((await response.json())["entries"])


async def test_operator_filters_by_segment_finds_a_customer_and_reads_its_timeline(
    secure_worker: WorkerProcess, settings: Settings, codec: EventCodec, secure_producer: AIOKafkaProducer
) -> None:
    merchant = new_merchant(settings)
    rows = random_rows(100, seed=60)
    insert_rows(settings, merchant, rows)
    set_thresholds(settings, merchant, THRESHOLDS)
    loyal = sum(1 for row in rows if segment_of(row.rfm_score, THRESHOLDS) == "loyal")
    assert loyal > 25, "the segment must span more than one page"

    email = f"page-{uuid.uuid4().hex[:8]}@example.com"
    async with signed_session(create_api_credentials(settings, merchant, [EDIT])) as http:
        body = {"merchant_id": merchant, "email": email, "metadata": {"tags": ["vip"]}}
        async with http.post(f"{secure_worker.url}/core/v1/customers", json=body) as response:
            assert response.status == 201, await response.text()
            customer = (await response.json())["id"]
    events = [
        rfm(merchant, customer, (3, 12, 2000), at(1)),
        points(merchant, customer, 120, at(2), tier="silver", reason="order #1042"),
    ]
    for event in events:  # one after the other: a known order
        await produce(secure_producer, codec, [event])
        await asyncio.sleep(0.5)

    async def recorded() -> bool:
        return await timeline_length(secure_worker, settings, merchant, customer) == 3

    await eventually(recorded, timeout=60, interval=0.5)

    token = mint_jwt(merchant, [VIEW])
    seen = await asyncio.to_thread(drive_page, f"{secure_worker.url}/admin/customers", token, email)

    assert len(seen.loyal_rows) == loyal and set(seen.loyal_rows) == {"loyal"}, seen.loyal_rows
    assert f"{len(rows) + 1} customers" in seen.counts and f"loyal {loyal}" in seen.counts, seen.counts
    assert seen.found == [customer]
    assert [(v, k) for v, k, _ in seen.entries] == [(3, "points"), (2, "rfm"), (1, "created")], seen.entries
    assert seen.entries[0][2] == "points 0 → 120 (+120): order #1042; tier none → silver"
    assert seen.entries[1][2].startswith("first RFM score by RFM Analytics: recency 3 days")
    assert seen.entries[2][2].startswith("created through the API (rest) by api_key:")
    assert "3 change(s), newest first" in seen.summary and not seen.erased_badge
    assert not [
        line
        for line in seen.console
        if "Content Security Policy" in line or ("SEVERE" in line and "favicon" not in line)
    ], seen.console
    assert SCREENSHOT.stat().st_size > 10_000


async def test_the_customers_page_files_are_public_and_what_it_reads_is_not(
    secure_worker: WorkerProcess, settings: Settings
) -> None:
    merchant, other = new_merchant(settings), new_merchant(settings)
    async with aiohttp.ClientSession() as http:
        for path, kind in [
            ("/admin/customers", "text/html"),
            ("/admin/customers.js", "text/javascript"),
            ("/admin/customers.css", "text/css"),
            ("/admin/admin.js", "text/javascript"),
        ]:
            async with http.get(f"{secure_worker.url}{path}") as response:
                assert response.status == 200 and response.content_type == kind
                assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        query = {
            "query": "query($m: ID!) { customers(merchant_id: $m, first: 1) { edges { node { id } } } }",
            "variables": {"m": other},
        }
        async with http.post(f"{secure_worker.url}/graphql", json=query) as response:
            assert response.status == 401
        headers = {"Authorization": f"Bearer {mint_jwt(merchant, [VIEW])}"}
        async with http.post(f"{secure_worker.url}/graphql", json=query, headers=headers) as response:
            answer: Any = await response.json()
        assert answer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
