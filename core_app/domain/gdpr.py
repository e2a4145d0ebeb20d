"""GDPR requests and the data export document: pure rules, no I/O (docs/decisions.md D160, D161).

Every compliance request (Shopify's three webhooks, AdminCore's `gdpr_request.created`) is tracked
under a deterministic id, so a redelivery of the same request finds its row; each has a 30-day
deadline. The export is one JSON document per access request, built here from what the adapters
read; an erased customer's document holds nothing readable.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

DEADLINE = timedelta(days=30)
KINDS = ("access", "redact", "shop_redact")
SOURCES = ("shopify", "admincore")
_REQUEST_NAMESPACE = uuid.UUID("a4b1f0d2-5c6e-4f8a-9b3d-2e7c1a9f4d60")
_EXPORT_NAMESPACE = uuid.UUID("c3e9a7b5-1d2f-4a6c-8e0b-7f5d3c1a9e24")
MAX_ERROR = 500


def request_id(source: str, kind: str, external_id: str) -> str:
    """The tracking id of a request: the same for every delivery of it."""
    return str(uuid.uuid5(_REQUEST_NAMESPACE, f"{source}:{kind}:{external_id}"))


def export_id_for(request: str) -> str:
    """One export per access request: a redelivered request rebuilds the same export."""
    return str(uuid.uuid5(_EXPORT_NAMESPACE, request))


@dataclass(frozen=True)
class GdprRequest:
    """A compliance request as tracked (`gdpr_requests`): ids and names only, never PII."""

    id: str
    kind: str  # access | redact | shop_redact
    source: str  # shopify | admincore
    merchant_id: str | None
    received_at: datetime
    customer_id: str | None = None
    shop_domain: str | None = None
    external_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.source not in SOURCES:
            raise ValueError(f"unknown GDPR request {self.source}/{self.kind}")

    @property
    def deadline(self) -> datetime:
        return self.received_at + DEADLINE


def error_text(exc: BaseException) -> str:
    """What is kept of a failure: its type and message, bounded (messages carry ids, not PII)."""
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR]


@dataclass(frozen=True)
class OpenRequests:
    """The compliance requests not done yet, over every worker (they share PostgreSQL)."""

    open: int
    overdue: int  # past their 30-day deadline
    oldest_age_seconds: float


@dataclass(frozen=True)
class SealedExport:
    export_id: str
    request_id: str
    merchant_id: str
    customer_id: str | None
    sealed_with: str  # customer_key | kek
    sealed: str
    key_wrapped: bytes | None = None


# -- the export document ----------------------------------------------------------------------------

PROFILE_FIELDS = ("id", "created_at", "updated_at", "version")


def _block(metadata: dict[str, Any], name: str) -> Any:
    value = metadata.get(name)
    return value if isinstance(value, dict) else None


def import_ids(metadata: dict[str, Any]) -> list[str]:
    """The imports that wrote this customer (`metadata.imports.{source}.import_id`)."""
    imports = _block(metadata, "imports") or {}
    found = {
        str(block["import_id"])
        for block in imports.values()
        if isinstance(block, dict) and isinstance(block.get("import_id"), str)
    }
    return sorted(found)


@dataclass(frozen=True)
class ExportParts:
    """What the adapters read for one customer's export; `view` is None when no customer was found."""

    view: dict[str, Any] | None
    email: str | None
    import_logs: list[dict[str, Any]]
    audit: list[dict[str, Any]]


def export_document(
    export_id: str, request: GdprRequest, parts: ExportParts, generated_at: str
) -> dict[str, Any]:
    """The export: the profile with its email, RFM, points, referrals, tier, the import-log rows and
    the audit entries about the customer. An erased customer's holds its id and nothing else."""
    head = {
        "export_id": export_id,
        "request_id": request.id,
        "merchant_id": request.merchant_id,
        "customer_id": request.customer_id,
        "generated_at": generated_at,
        "found": parts.view is not None,
    }
    view = parts.view
    if view is None or view.get("redacted"):
        empty = {"customer": None, "rfm": None, "points": None, "referrals": None, "tier": None}
        erased = {"id": view["id"], "redacted": True} if view is not None else None
        return head | empty | {"customer": erased, "import_logs": [], "audit": []}
    metadata = view.get("metadata") or {}
    points = _block(metadata, "points")
    profile = {name: view.get(name) for name in PROFILE_FIELDS}
    profile |= {"email": parts.email, "redacted": False, "metadata": metadata}
    return head | {
        "customer": profile,
        "rfm": view.get("rfm_score") or None,
        "points": points,
        "referrals": _block(metadata, "referrals"),
        "tier": (points or {}).get("tier") or metadata.get("tier") or metadata.get("vip_tier"),
        "import_logs": parts.import_logs,
        "audit": parts.audit,
    }
