"""The owner's side of an `import_update` command: imported rows applied to customers that exist.

Synchronous on purpose: the agent (agents/customer_import_updates.py) runs it in one section, so no
other agent can interleave between reading a customer's state and saving the new one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core_app.domain.customer import CustomerState, customer_key
from core_app.domain.customer_import import imported_metadata
from core_app.domain.timeline import import_updated_entry

ReadState = Callable[[str], CustomerState | None]  # the table's state of a key (None: not there)
SaveState = Callable[[CustomerState, list[dict[str, Any]]], None]  # a state and its timeline entries


def apply_updates(
    command: dict[str, Any], read: ReadState, save: SaveState, now: str
) -> tuple[list[CustomerState], int, list[dict[str, Any]]]:
    """Changed states, the updated count (replays included) and the rows' errors."""
    merchant_id, source = command["merchant_id"], command["source"]
    occurred_at_ms = int(command["occurred_at_ms"])
    changed: list[CustomerState] = []
    updated = 0
    errors: list[dict[str, Any]] = []
    for item in command["customers"]:
        state = read(customer_key(merchant_id, item["customer_id"]))
        if state is None:
            errors.append({"row": item["row"], "error": "the matching customer no longer exists"})
            continue
        if state.redacted:
            errors.append({"row": item["row"], "error": "the matching customer was erased on a GDPR request"})
            continue
        updated += 1
        if not state.is_newer("import", occurred_at_ms):
            continue  # this import (or a newer one) was applied already: a replayed command
        metadata = imported_metadata(state.metadata, source, item["fields"])
        state = state.advanced("import", occurred_at_ms, now, metadata=metadata)
        fields = sorted(name for name in item["fields"] if name not in ("import_id", "imported_at"))
        made = import_updated_entry(
            state, command["import_id"], source, item.get("row"), fields, occurred_at_ms
        )
        save(state, [made])
        changed.append(state)
    return changed, updated, errors


def confirmation(command: dict[str, Any], updated: int, errors: list[dict[str, Any]]) -> dict[str, Any]:
    """What the owner publishes on the command's `reply_to` channel."""
    return {"command_id": command["command_id"], "updated": updated, "errors": errors}
