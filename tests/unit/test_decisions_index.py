"""docs/decisions.md keeps an index by area at the top (D194): every decision is in it once, every
index line links a decision that exists, under the anchor GitHub gives its heading."""

from __future__ import annotations

import re
from pathlib import Path

DECISIONS = Path(__file__).resolve().parents[2] / "docs" / "decisions.md"


def anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation but `-` and `_` dropped, spaces to `-`."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_decision_is_indexed_once_and_every_link_resolves() -> None:
    text = DECISIONS.read_text(encoding="utf-8")
    headings = re.findall(r"^## (D(\d+)\. .*)$", text, re.M)
    anchors = {int(number): anchor(heading) for heading, number in headings}
    assert len(anchors) == len(headings), "a decision number is used twice"
    links = re.findall(r"^- \[D(\d+)\]\(#([^)]+)\)", text, re.M)
    indexed = [int(number) for number, _ in links]
    assert sorted(indexed) == sorted(anchors), "index and headings differ"
    assert {int(n): target for n, target in links} == anchors
