"""The owner's side of an import_update command: applied once, refused for the gone and erased."""

from __future__ import annotations

from core_app.customer_import.owner_apply import apply_updates, confirmation
from core_app.domain.customer import CustomerState, customer_key
from core_app.domain.timeline import describe

MERCHANT = "m-1"
NOW = "2026-01-01T00:00:01.000Z"


def command(*customer_ids: str, occurred_at_ms: int = 1000) -> dict[str, object]:
    customers = [
        {"customer_id": cid, "row": row, "fields": {"points": 5}} for row, cid in enumerate(customer_ids, 2)
    ]
    return {
        "command_id": "imp:1:1",
        "import_id": "imp",
        "merchant_id": MERCHANT,
        "source": "custom",
        "occurred_at_ms": occurred_at_ms,
        "customers": customers,
    }


def table(*states: CustomerState) -> dict[str, CustomerState]:
    return {state.key: state for state in states}


def test_existing_customers_get_the_imported_block_once() -> None:
    states = table(CustomerState(MERCHANT, "c-1", None, "h1", metadata={"vip": True}))
    saved: list[CustomerState] = []
    entries: list[dict] = []

    def save(state: CustomerState, timeline: list[dict]) -> None:
        saved.append(state)
        entries.extend(timeline)

    changed, updated, errors = apply_updates(command("c-1"), states.get, save, NOW)
    assert updated == 1 and errors == [] and saved == changed
    assert changed[0].metadata == {"vip": True, "imports": {"custom": {"points": 5}}}
    assert [(e["kind"], e["version"], e["at"]) for e in entries] == [("import_updated", 1, 1000)]
    assert describe(entries[0]["kind"], entries[0]["change"], entries[0]["source"]) == (
        "updated by import imp from custom, row 2: points"
    )
    states = table(*changed)
    again, updated, _ = apply_updates(command("c-1"), states.get, save, NOW)  # a replay
    assert again == [] and updated == 1 and len(saved) == 1 and len(entries) == 1


def test_missing_and_erased_customers_are_row_errors() -> None:
    erased = CustomerState(MERCHANT, "c-2", None, None, redacted_at=NOW)
    saved: list[CustomerState] = []
    cmd = command("gone", "c-2")
    changed, updated, errors = apply_updates(cmd, table(erased).get, lambda s, _t: saved.append(s), NOW)
    assert changed == [] and updated == 0 and saved == []
    assert errors == [
        {"row": 2, "error": "the matching customer no longer exists"},
        {"row": 3, "error": "the matching customer was erased on a GDPR request"},
    ]
    assert confirmation(cmd, updated, errors) == {"command_id": "imp:1:1", "updated": 0, "errors": errors}
    assert customer_key(MERCHANT, "gone") not in table(erased)
