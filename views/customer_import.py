"""REST `/core/v1/imports`: start an import (202, its pending log), list or get import logs."""

from __future__ import annotations

from typing import cast

from aiohttp import web

from core_app.domain.errors import ValidationFailed
from core_app.security.http import PRINCIPAL
from core_app.security.principal import Principal
from views.errors import json_object
from views.wiring import components_of


def principal_of(request: web.Request) -> Principal | None:
    """The caller the HTTP pipeline (or a WS connection-init) authenticated."""
    return cast(Principal | None, request.get(PRINCIPAL))


async def start_import(request: web.Request) -> web.Response:
    body = await json_object(request)
    service = components_of(request).customer_import
    log = await service.start_import(
        principal_of(request), body.get("merchant_id"), body.get("source"), body.get("file_url")
    )
    return web.json_response(log, status=202)


async def get_imports(request: web.Request) -> web.Response:
    merchant_id = request.query.get("merchant_id")
    if not merchant_id:
        raise ValidationFailed("merchant_id", "is required")
    service, principal = components_of(request).customer_import, principal_of(request)
    import_id = _given(request, "import_id")  # present but empty is a 400, not the whole list
    if import_id is not None:
        return web.json_response(await service.get_import_log(principal, merchant_id, import_id))
    status, limit = (_given(request, name) for name in ("status", "limit"))
    logs = await service.list_import_logs(principal, merchant_id, status, limit)
    return web.json_response({"imports": logs})


def _given(request: web.Request, name: str) -> str | None:
    """A query parameter, or None when absent; present but empty is a 400 naming it (gRPC and
    GraphQL send "" for unset, REST callers leave the parameter out)."""
    value = request.query.get(name)
    if value == "":
        raise ValidationFailed(name, "must not be empty; leave it out instead")
    return value
