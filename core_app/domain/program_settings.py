"""Program settings validation: RFM thresholds and the loyalty configuration (pure)."""

from __future__ import annotations

from typing import Any

from core_app.domain.errors import ValidationFailed
from core_app.domain.profile import check_json_document

RFM_DIMENSIONS = ("recency", "frequency", "monetary")

# The 22 locales the admin UI ships; `ar` and `he` are right-to-left.
SUPPORTED_LOCALES: tuple[str, ...] = (
    "en", "es", "fr", "de", "it", "pt", "nl", "sv", "da", "nb", "fi",
    "pl", "cs", "tr", "ru", "ja", "ko", "zh-CN", "zh-TW", "hi", "ar", "he",
)  # fmt: skip
RTL_LOCALES = frozenset({"ar", "he"})
MAX_POINTS_PER_DOLLAR = 10_000


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationFailed(field, "must be a number")
    return value


def validate_rfm_thresholds(raw: Any, field: str = "rfm_thresholds") -> dict[str, dict[str, float]]:
    """{recency|frequency|monetary: {min, max}}: all three, non-negative, min <= max."""
    if not isinstance(raw, dict):
        raise ValidationFailed(field, "must be an object with recency, frequency and monetary")
    unknown = sorted(set(raw) - set(RFM_DIMENSIONS))
    if unknown:
        raise ValidationFailed(f"{field}.{unknown[0]}", "is not an RFM dimension")
    thresholds: dict[str, dict[str, float]] = {}
    for dimension in RFM_DIMENSIONS:
        bounds = raw.get(dimension)
        where = f"{field}.{dimension}"
        if not isinstance(bounds, dict):
            raise ValidationFailed(where, "must be an object with min and max")
        low, high = _number(bounds.get("min"), f"{where}.min"), _number(bounds.get("max"), f"{where}.max")
        if low < 0:
            raise ValidationFailed(f"{where}.min", "must not be negative")
        if high < low:
            raise ValidationFailed(f"{where}.max", "must not be below min")
        thresholds[dimension] = {"min": low, "max": high}
    return thresholds


def validate_loyalty_config(raw: Any, field: str = "loyalty_config") -> dict[str, Any]:
    """`points_per_dollar` positive; `languages` a non-empty subset of SUPPORTED_LOCALES."""
    if not isinstance(raw, dict):
        raise ValidationFailed(field, "must be an object")
    check_json_document(raw, field)  # extra keys are kept: bound them like customer metadata
    points = _number(raw.get("points_per_dollar"), f"{field}.points_per_dollar")
    if not 0 < points <= MAX_POINTS_PER_DOLLAR:
        raise ValidationFailed(
            f"{field}.points_per_dollar", f"must be above 0 and at most {MAX_POINTS_PER_DOLLAR}"
        )
    languages = raw.get("languages")
    if not isinstance(languages, list) or not languages:
        raise ValidationFailed(f"{field}.languages", "must be a non-empty list of locales")
    for index, language in enumerate(languages):
        if language not in SUPPORTED_LOCALES:
            raise ValidationFailed(f"{field}.languages[{index}]", f"{language!r} is not a supported locale")
    if len(set(languages)) != len(languages):
        raise ValidationFailed(f"{field}.languages", "must not repeat a locale")
    return {**raw, "points_per_dollar": points, "languages": list(languages)}


def rtl_languages(loyalty_config: dict[str, Any]) -> list[str]:
    """The configured languages written right to left, for the admin UI's layout."""
    return [language for language in loyalty_config.get("languages", []) if language in RTL_LOCALES]
