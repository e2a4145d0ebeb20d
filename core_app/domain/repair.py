"""Merging copies of one customer split across partitions (before D100), by `occurred_at` per source.

Pure. Each source owns its part of the state: `rfm` the score, `points` and `referral` their
`metadata` entries, `profile` the email and the rest of `metadata`. Per source the copy that applied
the newest event wins that part; a redaction in any copy wins everything. The merged version is
above every copy's, so the PostgreSQL sink's version guard takes it over a stale, higher-versioned row.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from core_app.domain.customer import REDACTED_EMAIL, CustomerState

SOURCE_METADATA = {"points": "points", "referral": "referrals"}


def newest_for(copies: list[CustomerState], source: str) -> CustomerState:
    """The copy that applied the newest `source` event (the first copy on a tie: the owner's)."""
    return max(copies, key=lambda copy: copy.applied_as_of.get(source, 0))


def merge_copies(copies: list[CustomerState]) -> CustomerState:
    """One state from `copies` (the owner's first, if any); raises ValueError when there is none."""
    if not copies:
        raise ValueError("no copy to merge")
    version = max(copy.version for copy in copies) + 1
    sources = {source for copy in copies for source in copy.applied_as_of}
    applied_as_of = {source: newest_for(copies, source).applied_as_of[source] for source in sources}
    redacted = [copy for copy in copies if copy.redacted]
    if redacted:
        first = min(redacted, key=lambda copy: copy.redacted_at or "")
        return replace(
            first,
            email=REDACTED_EMAIL,
            email_hash=None,
            metadata={},
            version=version,
            applied_as_of=applied_as_of,
        )
    profile = newest_for(copies, "profile")
    metadata: dict[str, Any] = {
        name: value for name, value in profile.metadata.items() if name not in SOURCE_METADATA.values()
    }
    for source, entry in SOURCE_METADATA.items():
        holder = newest_for(copies, source)
        if entry in holder.metadata:
            metadata[entry] = holder.metadata[entry]
    email_holder = next((copy for copy in (profile, *copies) if copy.email is not None), profile)
    return replace(
        copies[0],
        email=email_holder.email,
        email_hash=email_holder.email_hash or profile.email_hash,
        rfm_score=newest_for(copies, "rfm").rfm_score,
        metadata=metadata,
        version=version,
        applied_as_of=applied_as_of,
        created_at=min((c.created_at for c in copies if c.created_at), default=copies[0].created_at),
        updated_at=max((c.updated_at for c in copies if c.updated_at), default=copies[0].updated_at),
    )


def has_news(copy: CustomerState, own: CustomerState) -> bool:
    """`copy` applied some source's event later than `own`, or was redacted when `own` was not."""
    if copy.redacted and not own.redacted:
        return True
    return any(as_of > own.applied_as_of.get(source, 0) for source, as_of in copy.applied_as_of.items())


def needs_repair(
    own: CustomerState | None, others: list[CustomerState], stored: CustomerState | None
) -> bool:
    """The owner's copy misses something another copy or the PostgreSQL row has, or the row's version
    is above the owner's (the sink would refuse the owner's next writes). A row merely behind is
    sink lag, not a split."""
    if own is None:
        return bool(others)
    if any(has_news(copy, own) for copy in others):
        return True
    return stored is not None and (stored.version > own.version or has_news(stored, own))
