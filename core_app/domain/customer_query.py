"""Customer list queries (pure): parameters, filters, projection, and the signed keyset cursor.

A cursor is `base64url(json) . base64url(HMAC-SHA256(key, json)[:16])` over the merchant, the filters'
digest and the last id served, so it cannot be forged, moved to another merchant or reused with other
filters (docs/decisions.md D130).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core_app.domain.email import normalize_email
from core_app.domain.errors import ValidationFailed
from core_app.domain.events import parse_uuid
from core_app.domain.rfm import RFM_LIMITS
from core_app.domain.segments import SEGMENTS

DEFAULT_LIMIT = 50
MAX_LIMIT = 250
MAX_TAG_LENGTH = 100
MAX_CURSOR_LENGTH = 512
FIELDS = (
    "id", "merchant_id", "email", "segment", "rfm_score", "metadata", "version", "redacted",
    "created_at", "updated_at",
)  # fmt: skip
_INTEGER = re.compile(r"-?[0-9]{1,12}")
RANGE_PARAMS = tuple(f"{d}_{end}" for d in RFM_LIMITS for end in ("min", "max"))


@dataclass(frozen=True)
class Filters:
    segment: str | None = None
    ranges: tuple[tuple[str, str, int], ...] = ()  # (dimension, "min"|"max", bound)
    updated_since: datetime | None = None
    email: str | None = None  # normalised; the service hashes it, it is never stored or logged
    tag: str | None = None
    redacted: bool | None = None

    def digest(self) -> str:
        """What a cursor is bound to. The email enters as a hash, so a cursor never carries it."""
        doc = {
            "segment": self.segment,
            "ranges": [list(r) for r in self.ranges],
            "updated_since": self.updated_since.isoformat() if self.updated_since else None,
            "email": hashlib.sha256(self.email.encode()).hexdigest() if self.email else None,
            "tag": self.tag,
            "redacted": self.redacted,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class ListQuery:
    merchant_id: str
    limit: int = DEFAULT_LIMIT
    after: str | None = None  # the last id of the previous page
    filters: Filters = field(default_factory=Filters)
    fields: frozenset[str] = frozenset(FIELDS)
    include: frozenset[str] | None = None  # metadata keys to return; None = every key


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(name, "must be a string")
    return value


def _integer(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise ValidationFailed(name, "must be an integer")
    if isinstance(value, str):
        if _INTEGER.fullmatch(value) is None:
            raise ValidationFailed(name, "must be an integer")
        value = int(value)
    if not isinstance(value, int):
        raise ValidationFailed(name, "must be an integer")
    if not low <= value <= high:
        raise ValidationFailed(name, f"must be between {low} and {high}")
    return value


def _boolean(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValidationFailed(name, "must be true or false")


def _timestamp(value: Any, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(_text(value, name).replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValidationFailed(name, "must be an ISO 8601 timestamp") from None


def parse_filters(raw: Mapping[str, Any]) -> Filters:
    segment = raw.get("segment")
    if segment is not None and segment not in SEGMENTS:
        raise ValidationFailed("segment", f"must be one of {', '.join(SEGMENTS)}")
    ranges = []
    for name in RANGE_PARAMS:
        if raw.get(name) is not None:
            dimension, end = name.rsplit("_", 1)
            low, high = RFM_LIMITS[dimension]
            ranges.append((dimension, end, _integer(raw[name], name, low, high)))
    email = raw.get("email")
    tag = raw.get("tag")
    if tag is not None and not (0 < len(_text(tag, "tag")) <= MAX_TAG_LENGTH and tag.isprintable()):
        raise ValidationFailed("tag", f"must be 1 to {MAX_TAG_LENGTH} printable characters")
    return Filters(
        segment=segment,
        ranges=tuple(ranges),
        updated_since=(
            _timestamp(raw["updated_since"], "updated_since")
            if raw.get("updated_since") is not None
            else None
        ),
        email=normalize_email(_text(email, "email")) if email is not None else None,
        tag=tag,
        redacted=_boolean(raw["redacted"], "redacted") if raw.get("redacted") is not None else None,
    )


def parse_fields(raw: Any) -> frozenset[str]:
    """`fields=a,b` (or a list): the projection; `id` is always included."""
    if raw is None:
        return frozenset(FIELDS)
    if raw == "":
        raise ValidationFailed("fields", "names no field; leave it out to get every field")
    names = [n.strip() for n in raw.split(",")] if isinstance(raw, str) else list(raw)
    unknown = sorted(str(n) for n in names if n not in FIELDS)
    if unknown:
        raise ValidationFailed("fields", f"unknown field {unknown[0]!r}; fields are {', '.join(FIELDS)}")
    return frozenset(names) | {"id"}


MAX_INCLUDE = 50


def parse_include(raw: Any) -> frozenset[str] | None:
    """`include=a,b` (or a list): the metadata keys to return, as Segment's profile API includes
    traits; None (absent or empty) returns every key. Projection only: the cursor ignores it."""
    if raw is None or raw == []:
        return None
    if raw == "":
        raise ValidationFailed("include", "names no key; leave it out to get every key")
    names = raw.split(",") if isinstance(raw, str) else list(raw)
    if len(names) > MAX_INCLUDE:
        raise ValidationFailed("include", f"names at most {MAX_INCLUDE} metadata keys")
    for name in names:
        if (
            not isinstance(name, str)
            or not 0 < len(name) <= MAX_TAG_LENGTH
            or any(ord(c) < 32 or c == "," for c in name)
        ):
            raise ValidationFailed(
                "include", f"each key must be 1 to {MAX_TAG_LENGTH} characters, no control one"
            )
    return frozenset(names)


def project_metadata(metadata: Any, include: frozenset[str] | None) -> Any:
    if include is None or not isinstance(metadata, dict):
        return metadata
    return {key: value for key, value in metadata.items() if key in include}


def parse_list_query(raw: Mapping[str, Any], cursor_key: bytes) -> ListQuery:
    """Every parameter checked, each error naming its field; the cursor checked against the rest."""
    merchant_id = parse_uuid(raw.get("merchant_id"), "merchant_id")
    limit = raw.get("limit")
    filters = parse_filters(raw)
    cursor = raw.get("cursor")
    after = None
    if cursor is not None and cursor != "":
        after = open_cursor(cursor_key, _text(cursor, "cursor"), merchant_id, filters.digest())
    return ListQuery(
        merchant_id=merchant_id,
        limit=_integer(limit, "limit", 1, MAX_LIMIT) if limit is not None else DEFAULT_LIMIT,
        after=after,
        filters=filters,
        fields=parse_fields(raw.get("fields")),
        include=parse_include(raw.get("include")),
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:16]


def make_cursor(key: bytes, merchant_id: str, digest: str, last_id: str | int) -> str:
    body = json.dumps({"v": 1, "m": merchant_id, "f": digest, "a": last_id}, separators=(",", ":")).encode()
    return f"{_b64(body)}.{_b64(_mac(key, body))}"


def open_cursor(key: bytes, cursor: str, merchant_id: str, digest: str) -> str:
    """The last id the cursor points after; refused when forged, another merchant's or other filters'."""
    return parse_uuid(cursor_position(key, cursor, merchant_id, digest), "cursor")


def cursor_position(key: bytes, cursor: str, merchant_id: str, digest: str) -> Any:
    """What a signed cursor points after (an id, a timeline version), checked as `open_cursor` says."""
    if len(cursor) > MAX_CURSOR_LENGTH or cursor.count(".") != 1:
        raise ValidationFailed("cursor", "is not a cursor this service issued")
    body_text, mac_text = cursor.split(".")
    try:
        body, mac = _unb64(body_text), _unb64(mac_text)
    except ValueError:
        raise ValidationFailed("cursor", "is not a cursor this service issued") from None
    if not hmac.compare_digest(mac, _mac(key, body)):
        raise ValidationFailed("cursor", "is not a cursor this service issued")
    doc = json.loads(body)
    if doc.get("m") != merchant_id:
        raise ValidationFailed("cursor", "was issued for another merchant")
    if doc.get("f") != digest:
        raise ValidationFailed("cursor", "was issued for other filters; start again without a cursor")
    return doc.get("a")
