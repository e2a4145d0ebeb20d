"""RFM segments from a merchant's `rfm_thresholds` (pure). Mirrored by SQL `core_rfm_segment`.

Each dimension gets a level from 1 to 3 against the merchant's {min, max}:
- recency (days since the last order, lower is better): <= min is 3, <= max is 2, otherwise 1;
- frequency and monetary (higher is better): >= max is 3, >= min is 2, otherwise 1.

The first rule that holds names the segment (R, F, M the levels):
  champions        R = 3, F = 3, M >= 2
  new              R = 3, F = 1
  loyal            R >= 2, F >= 2
  at_risk          R = 1, F >= 2
  hibernating      R = 1, F = 1
  needs_attention  everything else (R = 2, F = 1)
  unscored         no RFM score yet, or the merchant has no thresholds
"""

from __future__ import annotations

from typing import Any

SEGMENTS = ("champions", "loyal", "new", "at_risk", "needs_attention", "hibernating", "unscored")
UNSCORED = "unscored"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _bound(thresholds: dict[str, Any], dimension: str, end: str) -> float | None:
    bounds = thresholds.get(dimension)
    return _number(bounds.get(end)) if isinstance(bounds, dict) else None


def _level_low_is_good(value: float, low: float | None, high: float | None) -> int:
    if low is not None and value <= low:
        return 3
    if high is not None and value <= high:
        return 2
    return 1


def _level_high_is_good(value: float, low: float | None, high: float | None) -> int:
    if high is not None and value >= high:
        return 3
    if low is not None and value >= low:
        return 2
    return 1


def segment_of(rfm_score: dict[str, Any] | None, thresholds: dict[str, Any] | None) -> str:
    """The segment of one customer's score under one merchant's thresholds."""
    score = rfm_score or {}
    r, f, m = (_number(score.get(d)) for d in ("recency", "frequency", "monetary"))
    if r is None or f is None or m is None or not thresholds or _bound(thresholds, "recency", "min") is None:
        return UNSCORED
    rl = _level_low_is_good(r, _bound(thresholds, "recency", "min"), _bound(thresholds, "recency", "max"))
    fl = _level_high_is_good(
        f, _bound(thresholds, "frequency", "min"), _bound(thresholds, "frequency", "max")
    )
    ml = _level_high_is_good(m, _bound(thresholds, "monetary", "min"), _bound(thresholds, "monetary", "max"))
    if rl == 3 and fl == 3 and ml >= 2:
        return "champions"
    if rl == 3 and fl == 1:
        return "new"
    if rl >= 2 and fl >= 2:
        return "loyal"
    if rl == 1 and fl >= 2:
        return "at_risk"
    if rl == 1:
        return "hibernating"
    return "needs_attention"
