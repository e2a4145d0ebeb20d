"""REST `GET /core/v1/gdpr/exports/{export_id}?merchant_id=`: a GDPR data export, for callers with
`customers:read_pii`; every read is audited (core_app/services/gdpr_export.py)."""

from __future__ import annotations

from aiohttp import web

from core_app.services.gdpr_export import read_export
from views.responses import json_body, principal_of
from views.wiring import components_of


async def get_export(request: web.Request) -> web.Response:
    deps = components_of(request).gdpr
    document = await read_export(
        deps, principal_of(request), request.query.get("merchant_id"), request.match_info["export_id"]
    )
    return json_body(document)
