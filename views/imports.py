"""REST `/core/v1/imports`: start an import (202, its pending log), list or get import logs."""

from __future__ import annotations

from aiohttp import web

from core_app.domain.errors import ValidationFailed
from core_app.services import imports as service
from views.errors import json_object


async def start_import(request: web.Request) -> web.Response:
    body = await json_object(request)
    log = await service.start_import(body.get("merchant_id"), body.get("source"), body.get("file_url"))
    return web.json_response(log, status=202)


async def get_imports(request: web.Request) -> web.Response:
    merchant_id = request.query.get("merchant_id")
    if not merchant_id:
        raise ValidationFailed("merchant_id", "is required")
    import_id = request.query.get("import_id")
    if import_id:
        return web.json_response(await service.get_import_log(merchant_id, import_id))
    logs = await service.list_import_logs(
        merchant_id, request.query.get("status"), request.query.get("limit")
    )
    return web.json_response({"imports": logs})
