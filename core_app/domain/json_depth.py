"""Which member of a JSON document nests too deeply, found without parsing it.

A document nested deeper than the parser's recursion cannot be parsed at all, yet the client should
hear which field is too deep rather than "not JSON" (docs/decisions.md D153). The scan stops at the
first member past the limit, so a hostile document costs about `limit` tokens, not its length.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

# A string (captured, with a ":" after it when it is a member name), or a bracket.
_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:)?|[\[\]{}]')
# A member is named back to the client (and logged) only when it looks like a field name: a key is
# client text, and could be anything, an email included.
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def too_deep_member(text: str, limit: int) -> str | None:
    """The first top-level member of the JSON object `text` whose value nests more than `limit`
    levels (the member's own object or array is level 1); None if there is none, `text` is not an
    object, or the member's name does not look like a field name."""
    depth, member = 0, None
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token in "[{":
            depth += 1
            if depth == 1 and token != "{":
                return None
            if depth - 1 > limit:
                return member if member is not None and _FIELD_NAME.fullmatch(member) else None
        elif token in "]}":
            depth -= 1
        elif depth == 1 and match.group(2):
            try:
                member = json.loads(f'"{match.group(1)}"')
            except ValueError:
                member = match.group(1)
    return None


def deeper_than(value: Any, limit: int) -> bool:
    """Whether a parsed value nests more than `limit` levels; iterative, so any depth is safe."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any] | None = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        )
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def nesting_message(limit: int) -> str:
    return f"is nested deeper than {limit} levels"
