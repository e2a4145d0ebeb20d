"""The metric and label names a PromQL expression uses (enough PromQL for this repo's rules and
panels: selectors, matchers, `by`/`on`/`without` lists; strings and durations stripped)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KEYWORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "group",
    "rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets", "histogram_quantile",
    "vector", "scalar", "abs", "clamp_min", "clamp_max", "time", "absent", "min_over_time",
    "max_over_time", "avg_over_time", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset",
}  # fmt: skip
TARGET_LABELS = {"instance", "job"}  # added by Prometheus to every scraped series
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"


@dataclass
class Uses:
    metrics: dict[str, set[str]] = field(default_factory=dict)  # metric -> labels in its matchers
    grouping: set[str] = field(default_factory=set)  # labels in by/on/without lists


def uses(expr: str) -> Uses:
    found = Uses()
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values and other strings
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    for clause in re.findall(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)", text):
        found.grouping |= {label.strip() for label in clause.split(",") if label.strip()}
    text = re.sub(r"\b(?:by|on|without|ignoring)\s*\([^)]*\)", " ", text)
    for match in re.finditer(rf"({NAME})\s*(\{{[^}}]*\}})?", text):
        name, matchers = match.group(1), match.group(2)
        if name in KEYWORDS or (text[match.end() :].lstrip().startswith("(") and not matchers):
            continue
        labels = set(re.findall(rf"({NAME})\s*(?:=~|!~|!=|=)", matchers or ""))
        found.metrics.setdefault(name, set()).update(labels)
    return found
