"""The Confluent Schema Registry REST subset, on aiohttp. Errors use Confluent's error codes."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiopg
from aiohttp import web

from core_app.schema_registry import compat
from core_app.schema_registry.store import GLOBAL, RegistryStore, SubjectVersion

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
STORE: web.AppKey[RegistryStore] = web.AppKey("store", RegistryStore)


class RegistryError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _reply(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type=CONTENT_TYPE.split(";")[0])


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except RegistryError as exc:
        return _reply({"error_code": exc.code, "message": exc.message}, exc.status)


async def _schema_payload(request: web.Request) -> tuple[str, str]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RegistryError(422, 42201, "request body is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
        raise RegistryError(422, 42201, "body must be an object with a string 'schema'")
    schema_type = body.get("schemaType") or "AVRO"
    if schema_type != "AVRO":
        raise RegistryError(422, 42201, f"schemaType {schema_type} is not supported here")
    try:
        compat.parse(body["schema"])
    except compat.InvalidSchema as exc:
        raise RegistryError(422, 42201, f"invalid Avro schema: {exc}") from None
    return body["schema"], schema_type


async def _versions_or_404(store: RegistryStore, subject: str) -> list[SubjectVersion]:
    versions = await store.versions(subject)
    if not versions:
        raise RegistryError(404, 40401, f"subject {subject} not found")
    return versions


def _pick_version(versions: list[SubjectVersion], version: str) -> SubjectVersion:
    if version in ("latest", "-1"):
        return versions[-1]
    for item in versions:
        if str(item.version) == version:
            return item
    if not version.isdigit():
        raise RegistryError(422, 42202, f"invalid version {version}")
    raise RegistryError(404, 40402, f"version {version} not found")


def _describe(item: SubjectVersion) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": item.subject,
        "version": item.version,
        "id": item.schema_id,
        "schema": item.schema,
    }
    if item.schema_type != "AVRO":
        body["schemaType"] = item.schema_type
    return body


async def root(request: web.Request) -> web.Response:
    return _reply({})


async def list_subjects(request: web.Request) -> web.Response:
    return _reply(await request.app[STORE].subjects())


async def list_versions(request: web.Request) -> web.Response:
    versions = await _versions_or_404(request.app[STORE], request.match_info["subject"])
    return _reply([v.version for v in versions])


async def register(request: web.Request) -> web.Response:
    store, subject = request.app[STORE], request.match_info["subject"]
    schema, schema_type = await _schema_payload(request)
    existing = await store.versions(subject)
    digest = compat.fingerprint(schema_type, schema)
    if not any(compat.fingerprint(v.schema_type, v.schema) == digest for v in existing):
        level = await store.compatibility(subject)
        if not compat.is_compatible(schema, [v.schema for v in existing], level):
            raise RegistryError(409, 409, f"schema is incompatible with {subject} under {level}")
    schema_id, _version = await store.register(subject, schema, schema_type)
    return _reply({"id": schema_id})


async def lookup(request: web.Request) -> web.Response:
    store, subject = request.app[STORE], request.match_info["subject"]
    schema, schema_type = await _schema_payload(request)
    digest = compat.fingerprint(schema_type, schema)
    for item in await _versions_or_404(store, subject):
        if compat.fingerprint(item.schema_type, item.schema) == digest:
            return _reply(_describe(item))
    raise RegistryError(404, 40403, "schema not found")


async def get_version(request: web.Request) -> web.Response:
    versions = await _versions_or_404(request.app[STORE], request.match_info["subject"])
    return _reply(_describe(_pick_version(versions, request.match_info["version"])))


async def get_version_schema(request: web.Request) -> web.Response:
    versions = await _versions_or_404(request.app[STORE], request.match_info["subject"])
    return _reply(json.loads(_pick_version(versions, request.match_info["version"]).schema))


async def delete_subject(request: web.Request) -> web.Response:
    store, subject = request.app[STORE], request.match_info["subject"]
    await _versions_or_404(store, subject)
    return _reply(await store.delete_subject(subject))


def _schema_id(request: web.Request) -> int:
    raw = request.match_info["schema_id"]
    if not raw.isdigit():
        raise RegistryError(404, 40403, f"schema {raw} not found")
    return int(raw)


async def get_schema_by_id(request: web.Request) -> web.Response:
    found = await request.app[STORE].schema_by_id(_schema_id(request))
    if found is None:
        raise RegistryError(404, 40403, "schema not found")
    schema, schema_type = found
    body = {"schema": schema} if schema_type == "AVRO" else {"schema": schema, "schemaType": schema_type}
    return _reply(body)


async def get_schema_versions(request: web.Request) -> web.Response:
    pairs = await request.app[STORE].ids_for(_schema_id(request))
    if not pairs:
        raise RegistryError(404, 40403, "schema not found")
    return _reply([{"subject": s, "version": v} for s, v in pairs])


async def test_compatibility(request: web.Request) -> web.Response:
    store, subject = request.app[STORE], request.match_info["subject"]
    schema, _schema_type = await _schema_payload(request)
    target = _pick_version(await _versions_or_404(store, subject), request.match_info["version"])
    level = (await store.compatibility(subject)).removesuffix("_TRANSITIVE")
    return _reply({"is_compatible": compat.is_compatible(schema, [target.schema], level)})


async def get_config(request: web.Request) -> web.Response:
    subject = request.match_info.get("subject", GLOBAL)
    return _reply({"compatibilityLevel": await request.app[STORE].compatibility(subject)})


async def put_config(request: web.Request) -> web.Response:
    try:
        level = (await request.json()).get("compatibility")
    except (json.JSONDecodeError, AttributeError):
        level = None
    if level not in compat.LEVELS:
        raise RegistryError(422, 42203, f"compatibility must be one of {', '.join(compat.LEVELS)}")
    await request.app[STORE].set_compatibility(request.match_info.get("subject", GLOBAL), level)
    return _reply({"compatibility": level})


def build_registry_app(pool: aiopg.Pool) -> web.Application:
    app = web.Application(middlewares=[_errors])
    app[STORE] = RegistryStore(pool)
    app.router.add_get("/", root)
    app.router.add_get("/subjects", list_subjects)
    app.router.add_get("/subjects/{subject}/versions", list_versions)
    app.router.add_post("/subjects/{subject}/versions", register)
    app.router.add_post("/subjects/{subject}", lookup)
    app.router.add_delete("/subjects/{subject}", delete_subject)
    app.router.add_get("/subjects/{subject}/versions/{version}", get_version)
    app.router.add_get("/subjects/{subject}/versions/{version}/schema", get_version_schema)
    app.router.add_get("/schemas/ids/{schema_id}", get_schema_by_id)
    app.router.add_get("/schemas/ids/{schema_id}/versions", get_schema_versions)
    app.router.add_post("/compatibility/subjects/{subject}/versions/{version}", test_compatibility)
    app.router.add_get("/config", get_config)
    app.router.add_put("/config", put_config)
    app.router.add_get("/config/{subject}", get_config)
    app.router.add_put("/config/{subject}", put_config)
    return app
