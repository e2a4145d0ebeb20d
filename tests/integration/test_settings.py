"""Program settings: validated, applied by the owner agent, read back on every transport, persisted."""

from __future__ import annotations

import uuid

import pytest
from grpclib.client import Channel

from core_app.rpc.generated.core.v1 import core_pb2 as pb
from core_app.rpc.generated.core.v1.core_grpc import CoreServiceStub
from core_app.settings import Settings
from tests.support.api import THRESHOLDS, call
from tests.support.db import pg
from tests.support.events import new_merchant
from tests.support.processes import WorkerProcess, eventually


async def test_update_then_read_everywhere_and_persist(worker: WorkerProcess, settings: Settings) -> None:
    merchant_id = new_merchant(settings)
    body = {
        "merchant_id": merchant_id,
        "rfm_thresholds": THRESHOLDS,
        "loyalty_config": {"points_per_dollar": 10, "languages": ["en", "ar", "he"]},
    }
    status, saved = await call(worker, "POST", "/core/v1/settings", json=body)
    assert status == 200, saved
    assert saved["version"] == 1 and saved["rtl_languages"] == ["ar", "he"]

    status, read = await call(worker, "GET", "/core/v1/settings", params={"merchant_id": merchant_id})
    assert status == 200 and read["rfm_thresholds"] == THRESHOLDS and read["id"] == saved["id"]

    channel = Channel("127.0.0.1", worker.grpc_port)
    try:
        request = pb.UpdateProgramSettingsRequest(merchant_id=merchant_id)
        request.rfm_thresholds.update(THRESHOLDS)
        request.loyalty_config.update({"points_per_dollar": 5, "languages": ["fr"]})
        reply = await CoreServiceStub(channel).UpdateProgramSettings(request)
    finally:
        channel.close()
    assert reply.settings_id == saved["id"]

    async def persisted() -> bool:
        with pg(settings) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT version, loyalty_config FROM program_settings WHERE merchant_id = %s", (merchant_id,)
            )
            row = cur.fetchone()
        return row is not None and row[0] == 2 and row[1]["languages"] == ["fr"]

    await eventually(persisted)


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        (
            {"rfm_thresholds": THRESHOLDS | {"recency": {"min": 9, "max": 1}}},
            400,
            "rfm_thresholds.recency.max",
        ),
        (
            {"loyalty_config": {"points_per_dollar": 0, "languages": ["en"]}},
            400,
            "loyalty_config.points_per_dollar",
        ),
        (
            {"loyalty_config": {"points_per_dollar": 1, "languages": ["xx"]}},
            400,
            "loyalty_config.languages[0]",
        ),
        ({"merchant_id": "nope"}, 400, "merchant_id"),
    ],
)
async def test_invalid_settings_get_400_naming_the_field(
    worker: WorkerProcess, change: dict, status: int, field: str
) -> None:
    body = {
        "merchant_id": str(uuid.uuid4()),
        "rfm_thresholds": THRESHOLDS,
        "loyalty_config": {"points_per_dollar": 1, "languages": ["en"]},
    } | change
    got, answer = await call(worker, "POST", "/core/v1/settings", json=body)
    assert (got, answer["error"].get("field")) == (status, field)


async def test_unknown_merchant_is_404_on_write_and_read(worker: WorkerProcess) -> None:
    merchant_id = str(uuid.uuid4())
    body = {
        "merchant_id": merchant_id,
        "rfm_thresholds": THRESHOLDS,
        "loyalty_config": {"points_per_dollar": 1, "languages": ["en"]},
    }
    assert (await call(worker, "POST", "/core/v1/settings", json=body))[0] == 404
    assert (await call(worker, "GET", "/core/v1/settings", params={"merchant_id": merchant_id}))[0] == 404
