"""Log lines of a request carry its merchant, the merchant's shop domain and the caller's locale
(D149): the service's HTTP pipeline and `guard()` over the real PostgreSQL and Redis, logged through
the service's JSON formatter and context filter. No email or other PII appears."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from core_app.security import VIEW
from core_app.security.principal import current_principal
from core_app.settings import Settings
from tests.support.auth import create_api_credentials, signed_session
from tests.support.db import pg
from tests.support.events import new_merchant
from tests.support.logs import json_log_lines
from tests.support.security import LAYER, open_layer, serve

log = logging.getLogger("test.log_context.route")


async def guarded(request: web.Request) -> web.Response:
    await request.app[LAYER].guard(current_principal.get(), request.query["merchant_id"], VIEW)
    log.info("customer read", extra={"customer_id": "c-1"})
    return web.json_response({})


async def test_a_requests_lines_carry_its_merchant_shop_and_locale(settings: Settings) -> None:
    merchant = new_merchant(settings)
    creds = create_api_credentials(settings, merchant, [VIEW])
    routes = [("GET", "/core/v1/guarded", guarded)]

    with json_log_lines("test.log_context.route") as logged:
        async with open_layer(settings) as layer, serve(layer, routes) as url, signed_session(creds) as http:
            headers = {"Accept-Language": "ar-SA, en;q=0.5"}
            params = {"merchant_id": merchant}
            async with http.get(f"{url}/core/v1/guarded", params=params, headers=headers) as response:
                assert response.status == 200, await response.text()
    lines = [line for line in logged if line["message"] == "customer read"]
    (line,) = lines
    assert line["merchant_id"] == merchant
    with pg(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT shop_domain FROM merchants WHERE id = %s", (merchant,))
        (shop_domain,) = cur.fetchone()
    assert line["shop_domain"] == shop_domain
    assert line["locale"] == "ar"
    assert "@" not in json.dumps(line)
