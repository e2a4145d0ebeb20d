"""Field converters: one raw cell in, a checked non-PII value (or RowInvalid) out; and the
`metadata.imports.{source}` block they fill."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from core_app.domain.pii import sanitize_metadata

MAX_NUMBER = 10**12
MAX_TAGS = 50
MAX_TEXT = 100


def normalise_header(name: str) -> str:
    """'Accepts Email Marketing' -> 'accepts_email_marketing', 'customer ID' -> 'customer_id'."""
    return re.sub(r"[\s_\-]+", "_", name.strip().lstrip("\ufeff").lower()).strip("_")


class RowInvalid(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _text(value: Any, column: str, max_length: int = MAX_TEXT) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        if value is None:
            raise RowInvalid(f"{column}: must be text")
    value = value.strip()
    if not value:
        return None
    if len(value) > max_length:
        raise RowInvalid(f"{column}: longer than {max_length} characters")
    if "\x00" in value:
        raise RowInvalid(f"{column}: contains a NUL character")
    return value


def _whole_number(value: Any, column: str, required: bool = False) -> int | None:
    if isinstance(value, bool):
        raise RowInvalid(f"{column}: not a whole number")
    if isinstance(value, float):
        if not value.is_integer():
            raise RowInvalid(f"{column}: not a whole number")
        value = int(value)
    if isinstance(value, int):
        number = value
    else:
        text = _text(value, column, 32)
        if text is None:
            if required:
                raise RowInvalid(f"{column}: is required")
            return None
        if not re.fullmatch(r"[+-]?\d+(\.0+)?", text):
            raise RowInvalid(f"{column}: not a whole number")
        number = int(text.split(".", 1)[0])
    if not 0 <= number <= MAX_NUMBER:
        raise RowInvalid(f"{column}: must be between 0 and {MAX_NUMBER}")
    return number


def _amount(value: Any, column: str) -> float | None:
    if isinstance(value, bool):
        raise RowInvalid(f"{column}: not a number")
    if isinstance(value, int | float):
        text = repr(value)
    else:
        text = _text(value, column, 32)
        if text is None:
            return None
    try:
        amount = Decimal(text.replace(",", "") if re.fullmatch(r"[\d,]+(\.\d+)?", text) else text)
    except InvalidOperation:
        raise RowInvalid(f"{column}: not a number") from None
    if not amount.is_finite() or not 0 <= amount <= MAX_NUMBER:
        raise RowInvalid(f"{column}: must be a number between 0 and {MAX_NUMBER}")
    return float(round(amount, 2))


_TRUE = frozenset({"yes", "y", "true", "t", "1"})
_FALSE = frozenset({"no", "n", "false", "f", "0"})


def _boolean(value: Any, column: str) -> bool | None:
    if isinstance(value, bool):
        return value
    text = _text(value, column, 16)
    if text is None:
        return None
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise RowInvalid(f"{column}: expected yes/no or true/false")


def _tags(value: Any, column: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, list):
        items = [_text(item, column) for item in value]
    else:
        text = _text(value, column, MAX_TAGS * (MAX_TEXT + 2))
        items = [_text(part, column) for part in text.split(",")] if text else []
    tags = [tag for tag in items if tag]
    if len(tags) > MAX_TAGS:
        raise RowInvalid(f"{column}: more than {MAX_TAGS} tags")
    return tags or None


def _external_id(value: Any, column: str) -> str | None:
    text = _text(value, column, 64)
    if text is None:
        return None
    return text.lstrip("'") or None  # Shopify prefixes ids with ' so spreadsheets keep them as text


def _url(value: Any, column: str) -> str | None:
    text = _text(value, column, 500)
    if text is not None and not re.match(r"https?://", text, re.IGNORECASE):
        raise RowInvalid(f"{column}: not an http(s) URL")
    return text


Converter = Callable[[Any, str], Any]


def imported_metadata(existing: dict[str, Any], source: str, block: dict[str, Any]) -> dict[str, Any]:
    """`existing` with `metadata.imports.{source}` replaced by `block`, PII removed."""
    imports = existing.get("imports") if isinstance(existing.get("imports"), dict) else {}
    return sanitize_metadata({**existing, "imports": {**imports, source: block}})
