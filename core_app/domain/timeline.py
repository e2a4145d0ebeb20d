"""The customer timeline (pure): one entry per change applied to a customer, and its reason.

Support staff read it to answer "why does this customer have 0 points?". An entry is built where the
change is applied (the pipeline, the command agent, the import) and travels with the state it
produced: the table's changelog record carries the entries of that write, so the sink stores them in
the same transaction as the row, and none is lost or written twice (docs/decisions.md D170). Each
entry is keyed by the customer's `version` after the change, so the versions order the timeline
exactly as the changes were applied.

An entry holds facts only (`kind`, `at` in epoch ms, `change`, `source`, `event_id`): building it is a
few dict literals, cheap enough for every event of the hot path. The sentence a reader sees is
rendered from them when the timeline is read (`describe`), so it costs nothing at ingest and can be
worded better later without rewriting history. Entries carry no PII: no email, no metadata values
(only the names of changed keys), and a producer's free-text reason loses anything shaped like an
email. An erasure writes no entry: it purges the customer's timeline (D171).
"""

from __future__ import annotations

import re
from typing import Any

from core_app.domain.customer import CustomerState
from core_app.domain.events import CustomerEvent, PointsUpdated, ReferralCreated, RfmUpdated

KINDS = ("created", "imported", "rfm", "points", "referral", "updated", "import_updated", "repaired")
MAX_REASON = 500
_EMAIL_SHAPED = re.compile(r"[^\s@]+@[^\s@]+")
_UNITS = {"recency": " days", "frequency": " orders", "monetary": ""}

Entry = dict[str, Any]


def scrub(text: str) -> str:
    """A producer's free text without anything shaped like an email, bounded."""
    return _EMAIL_SHAPED.sub("[email removed]", text)[:MAX_REASON]


def entry(version: int, kind: str, at_ms: int, change: dict[str, Any], source: dict[str, Any]) -> Entry:
    return {"version": version, "kind": kind, "at": at_ms, "change": change, "source": source}


# -- built where the change is applied (hot path: facts only) -------------------------------------


def event_entry(
    before: CustomerState, after: CustomerState, event: CustomerEvent, source: dict[str, Any]
) -> Entry | None:
    """The entry of a consumed event applied to `before` (None for an erasure: it purges instead)."""
    if isinstance(event, RfmUpdated):
        change: dict[str, Any] = {"before": before.rfm_score or None, "after": after.rfm_score}
    elif isinstance(event, PointsUpdated):
        old = before.metadata.get("points")
        old = old if isinstance(old, dict) else {}
        change = {
            "balance_before": old.get("balance") if isinstance(old.get("balance"), int) else 0,
            "balance": event.balance,
            "lifetime_earned": event.lifetime_earned,
            "tier_before": old.get("tier"),
            "tier": event.tier,
        }
        if event.reason:
            change["reason"] = scrub(event.reason)
    elif isinstance(event, ReferralCreated):
        change = {
            "referral_id": event.referral_id,
            "code": event.referral_code,
            "total": event.total_referrals,
        }
    else:
        return None
    made = entry(after.version, event.source, event.occurred_at_ms, change, source)
    made["event_id"] = event.event_id
    return made


def consumed_source(topic: str, partition: int, offset: int, forwarded_from: str | None) -> dict[str, Any]:
    """Where the event was read: its producer's topic, partition and offset (a forwarded event's
    `forwarded_from` header names them; it was read again from core.rekeyed)."""
    if forwarded_from and forwarded_from.count("/") == 2:
        origin, part, off = forwarded_from.split("/")
        if part.isdigit() and off.isdigit():
            return {"topic": origin, "partition": int(part), "offset": int(off)}
    return {"topic": topic, "partition": partition, "offset": offset}


def created_entry(state: CustomerState, at_ms: int, transport: str, actor: str) -> Entry:
    change = {"metadata_keys": sorted(state.metadata)}
    return entry(state.version, "created", at_ms, change, {"transport": transport, "actor": actor})


def updated_entry(
    state: CustomerState, at_ms: int, transport: str, actor: str, keys: list[str], email_changed: bool
) -> Entry:
    change = {"metadata_keys": keys, "email_changed": email_changed}
    return entry(state.version, "updated", at_ms, change, {"transport": transport, "actor": actor})


def imported_entry(import_id: str, source: str, row: int | None, at_ms: int) -> Entry:
    """A customer an import created (version 0: the row as the import inserted it)."""
    return entry(0, "imported", at_ms, {}, {"import_id": import_id, "import_source": source, "row": row})


def import_updated_entry(
    state: CustomerState, import_id: str, source: str, row: int | None, fields: list[str], at_ms: int
) -> Entry:
    origin = {"import_id": import_id, "import_source": source, "row": row}
    return entry(state.version, "import_updated", at_ms, {"fields": fields}, origin)


def repaired_entry(state: CustomerState, at_ms: int) -> Entry:
    return entry(state.version, "repaired", at_ms, {}, {"tool": "core repair"})


def demo_entry(at_ms: int) -> Entry:
    """A customer `core demo` inserted (sample data)."""
    return entry(0, "imported", at_ms, {}, {"tool": "core demo"})


# -- rendered when the timeline is read ------------------------------------------------------------


def _rfm_part(name: str, before: Any, after: Any) -> str:
    if before is None:
        return f"{name} {after}{_UNITS[name]}"
    if before == after:
        return f"{name} {after}{_UNITS[name]} (unchanged)"
    return f"{name} {before} → {after}{_UNITS[name]}"


def _rfm(change: dict[str, Any]) -> str:
    before, after = change.get("before") or {}, change.get("after") or {}
    parts = ", ".join(_rfm_part(name, before.get(name), after.get(name)) for name in _UNITS)
    return f"{'RFM rescored' if before else 'first RFM score'} by RFM Analytics: {parts}"


def _points(change: dict[str, Any]) -> str:
    old, new = change.get("balance_before", 0), change.get("balance", 0)
    text = f"points {old} → {new} ({new - old:+d})"
    text += f": {change['reason']}" if change.get("reason") else ": no reason given by Points"
    if change.get("tier_before") != change.get("tier"):
        text += f"; tier {change.get('tier_before') or 'none'} → {change.get('tier') or 'none'}"
    return text


def _referral(change: dict[str, Any]) -> str:
    code = f" with code {change['code']}" if change.get("code") else ""
    return f"made referral {change.get('referral_id')}{code}; {change.get('total')} in total"


def _at_row(source: dict[str, Any]) -> str:
    return f", row {source['row']}" if source.get("row") is not None else ""


def _updated(change: dict[str, Any], source: dict[str, Any]) -> str:
    keys = change.get("metadata_keys") or []
    what = ([f"metadata {', '.join(keys)}"] if keys else []) + (
        ["email"] if change.get("email_changed") else []
    )
    via = f"through the API ({source.get('transport')}) by {source.get('actor')}"
    return f"profile updated {via}: {'; '.join(what) or 'nothing new'}"


def _imported(source: dict[str, Any]) -> str:
    if source.get("tool") == "core demo":
        return "created by core demo (sample data)"
    return f"imported from {source.get('import_source')} (import {source.get('import_id')}{_at_row(source)})"


def describe(kind: str, change: dict[str, Any], source: dict[str, Any]) -> str:
    """The reason a reader sees, from the entry's facts."""
    if kind == "rfm":
        return _rfm(change)
    if kind == "points":
        return _points(change)
    if kind == "referral":
        return _referral(change)
    if kind == "created":
        return f"created through the API ({source.get('transport')}) by {source.get('actor')}"
    if kind == "updated":
        return _updated(change, source)
    if kind == "imported":
        return _imported(source)
    if kind == "import_updated":
        fields = ", ".join(change.get("fields") or []) or "no field"
        origin = f"import {source.get('import_id')} from {source.get('import_source')}{_at_row(source)}"
        return f"updated by {origin}: {fields}"
    if kind == "repaired":
        return "copies from other partitions merged by core repair"
    return kind
