"""GDPR data exports (docs/decisions.md D161): one JSON document per access request, for Shopify's
`customers/data_request` and AdminCore's `gdpr_request.created` ACCESS alike.

Building: the profile through the read path (the freshest state: table, owner, Redis, PostgreSQL),
the email from PostgreSQL (its system of record), the import-log rows the customer came from and
the audit entries about the customer; nothing of another customer or merchant is read. The document
is sealed under the customer's own data key, so the erasure that shreds the key (customers/redact,
shop/redact) makes every export of that customer unreadable too; a document without a customer
(none matched) is sealed under a fresh key wrapped by KEY_ENCRYPTION_KEY. `gdpr_export.ready`
announces it, without PII.

Reading (`GET /core/v1/gdpr/exports/{id}`): the merchant's caller needs `customers:read_pii` on top
of `admin:customers:view` (D132), and every read writes an audit row before the document leaves.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from core_app import topics
from core_app.domain.errors import NotFound, Unavailable
from core_app.domain.events import parse_uuid
from core_app.domain.gdpr import (
    ExportParts,
    GdprRequest,
    SealedExport,
    export_document,
    export_id_for,
    import_ids,
)
from core_app.security.crypto import DecryptionFailed
from core_app.security.envelope import open_secret, seal_secret
from core_app.security.errors import Forbidden
from core_app.security.principal import READ_PII, VIEW, Principal
from core_app.security.shredding import KeyShredded
from core_app.services.gdpr_deps import GdprDeps

KEK_PURPOSE = "gdpr_export"
EXPORT_PATH = "/core/v1/gdpr/exports/{export_id}"


def field_name(export_id: str) -> str:
    """The associated data of a sealed export: bound to its id, so rows cannot be swapped."""
    return f"gdpr_export:{export_id}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def gather(deps: GdprDeps, request: GdprRequest) -> ExportParts:
    """What the export holds, read for this merchant's customer only."""
    merchant_id, customer_id = request.merchant_id, request.customer_id
    if merchant_id is None or customer_id is None:
        return ExportParts(None, None, [], [])
    try:
        view, _ = await deps.customers.read(merchant_id, customer_id)
    except NotFound:
        return ExportParts(None, None, [], [])
    stored = await deps.store.email_of(merchant_id, customer_id)
    if stored is not None and stored.redacted:
        view = view | {"redacted": True}
    if view.get("redacted"):
        return ExportParts(view, None, [], [])
    logs = await deps.exports.import_logs(merchant_id, import_ids(view.get("metadata") or {}))
    audit = await deps.exports.audit_entries(merchant_id, customer_id)
    return ExportParts(view, stored.email if stored else None, logs, audit)


async def _seal(
    deps: GdprDeps, export_id: str, request: GdprRequest, document: dict[str, Any]
) -> SealedExport:
    merchant_id, customer_id = request.merchant_id, request.customer_id
    assert merchant_id is not None
    text = json.dumps(document, ensure_ascii=False, sort_keys=True)
    if document["customer"] is not None and not document["customer"]["redacted"]:
        assert customer_id is not None
        sealed = await deps.data_keys.seal_field(merchant_id, customer_id, field_name(export_id), text)
        return SealedExport(export_id, request.id, merchant_id, customer_id, "customer_key", sealed)
    wrapped, body = seal_secret(deps.kek, KEK_PURPOSE, export_id, text)
    sealed = base64.b64encode(body).decode()
    return SealedExport(export_id, request.id, merchant_id, customer_id, "kek", sealed, wrapped)


async def build_export(deps: GdprDeps, request: GdprRequest) -> dict[str, Any]:
    """Build, seal, store and announce the export of `request`; returns the request's result (ids,
    no PII). Idempotent: a redelivered request rebuilds the same export id."""
    if request.merchant_id is None:
        return {"export_id": None, "found": False, "reason": "unknown shop"}
    export_id = export_id_for(request.id)
    parts = await gather(deps, request)
    document = export_document(export_id, request, parts, now_iso())
    try:
        sealed = await _seal(deps, export_id, request, document)
    except KeyShredded:  # erased while the export was being built: it holds nothing readable
        erased = ExportParts({**parts.view, "redacted": True} if parts.view else None, None, [], [])
        document = export_document(export_id, request, erased, now_iso())
        sealed = await _seal(deps, export_id, request, document)
    await deps.exports.save(sealed)
    found = parts.view is not None
    await deps.publish(topics.GDPR_EXPORT_READY, request.merchant_id, _ready(export_id, request, found))
    return {"export_id": export_id, "found": found}


def _ready(export_id: str, request: GdprRequest, found: bool) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "export_id": export_id,
        "request_id": request.id,
        "merchant_id": request.merchant_id,
        "customer_id": request.customer_id,
        "source": request.source.upper(),
        "external_id": request.external_id,
        "found": found,
        "path": EXPORT_PATH.format(export_id=export_id),
        "created_at": datetime.now(UTC),
    }


async def _open(deps: GdprDeps, export: SealedExport) -> dict[str, Any]:
    try:
        if export.sealed_with == "customer_key":
            assert export.customer_id is not None
            text = await deps.data_keys.open_field(
                export.merchant_id, export.customer_id, field_name(export.export_id), export.sealed
            )
        else:
            assert export.key_wrapped is not None
            body = base64.b64decode(export.sealed)
            text = open_secret(deps.kek, KEK_PURPOSE, export.export_id, export.key_wrapped, body)
    except KeyShredded:
        raise NotFound("export", f"{export.export_id} (erased with its customer)") from None
    except DecryptionFailed:
        raise NotFound("export", export.export_id) from None
    document: dict[str, Any] = json.loads(text)
    return document


async def read_export(
    deps: GdprDeps, principal: Principal | None, merchant_id: Any, export_id: Any
) -> dict[str, Any]:
    """The merchant's export document; needs `customers:read_pii` and is audited (D132, D161)."""
    merchant_id = parse_uuid(merchant_id, "merchant_id")
    export_id = parse_uuid(export_id, "export_id")
    caller = await deps.guard.guard(principal, merchant_id, VIEW)
    if READ_PII not in caller.permissions:
        raise Forbidden(f"needs permission {READ_PII}", reason="permission", permission=READ_PII)
    export = await deps.exports.load(merchant_id, export_id)
    if export is None:
        raise NotFound("export", export_id)
    document = await _open(deps, export)
    try:
        await deps.audit.write(
            merchant_id=merchant_id,
            actor=f"{caller.auth_method}:{caller.subject}",
            action="gdpr.export_read",
            entity_type="gdpr_export",
            entity_id=export_id,
            details={"customer_id": export.customer_id, "request_id": export.request_id},
        )
    except Exception as exc:  # never an export read without its audit row
        raise Unavailable(f"the export read could not be audited ({type(exc).__name__}); retry") from exc
    return document
