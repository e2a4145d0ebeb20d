"""Settings changes and imports write `audit_logs` rows (GDPR erasure: see test_pipeline.py)."""

from __future__ import annotations

from typing import Any

from core_app.settings import Settings
from tests.support.api import THRESHOLDS, call
from tests.support.db import pg
from tests.support.events import new_merchant
from tests.support.file_server import FileServer
from tests.support.imports import DATA, post_import
from tests.support.processes import WorkerProcess, eventually


def audit_rows(settings: Settings, merchant_id: str) -> list[tuple[Any, ...]]:
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT action, entity_type, entity_id::text, actor, details FROM audit_logs"
            " WHERE merchant_id = %s AND action <> 'merchant.created' ORDER BY created_at",  # by new_merchant
            (merchant_id,),
        )
        return cur.fetchall()


async def test_a_settings_change_is_audited_once_per_request(
    worker: WorkerProcess, settings: Settings
) -> None:
    merchant_id = new_merchant(settings)
    body = {
        "merchant_id": merchant_id,
        "rfm_thresholds": THRESHOLDS,
        "loyalty_config": {"points_per_dollar": 2, "languages": ["en"]},
    }
    status, saved = await call(worker, "POST", "/core/v1/settings", json=body)
    assert status == 200, saved
    status, again = await call(worker, "POST", "/core/v1/settings", json=body)
    assert status == 200 and again["version"] == 2
    rows = audit_rows(settings, merchant_id)
    assert [(r[0], r[1], r[2]) for r in rows] == [("settings.update", "program_settings", saved["id"])] * 2
    assert [r[4]["version"] for r in rows] == [1, 2] and all(r[3] for r in rows)


async def test_starting_an_import_is_audited(
    worker: WorkerProcess,
    settings: Settings,
    file_server: FileServer,
) -> None:
    merchant_id = new_merchant(settings)
    url = file_server.add("audited.csv", (DATA / "custom_customers.csv").read_bytes()) + "?signature=secret"
    status, log = await post_import(worker, {"merchant_id": merchant_id, "source": "custom", "file_url": url})
    assert status == 202, log

    async def audited() -> list[tuple[Any, ...]]:
        return [r for r in audit_rows(settings, merchant_id) if r[0] == "import.start"]

    await eventually(audited, timeout=10)
    [(_, entity_type, entity_id, _, details)] = await audited()
    assert (entity_type, entity_id) == ("customer_import", log["import_id"])
    assert details["source"] == "custom" and "secret" not in details["file_url"]
