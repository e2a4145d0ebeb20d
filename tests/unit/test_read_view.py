"""The hot read path's view of a stored customer equals the domain's view."""

from core_app.domain.customer import CustomerState
from core_app.services.customers import customer_view, stored_view


def test_stored_view_equals_the_view_of_the_state() -> None:
    full = CustomerState(
        merchant_id="m",
        customer_id="c",
        email="aes256:x",
        email_hash="h",
        rfm_score={"recency": 1, "frequency": 2, "monetary": 3},
        metadata={"tier": "gold"},
        version=7,
        applied_as_of={"rfm": 5},
        redacted_at="2026-01-02T00:00:00.000Z",
        created_at="2026-01-01T00:00:00.000Z",
        updated_at="2026-01-02T00:00:00.000Z",
    )
    minimal = {"merchant_id": "m", "customer_id": "c", "email": None, "email_hash": None}
    for stored in (full.to_dict(), minimal):
        assert stored_view(stored) == customer_view(CustomerState.from_dict(stored))


def test_answers_and_cache_entries_hold_integers_beyond_64_bits() -> None:
    import json

    from core_app.customer_adapters import _json
    from views.responses import json_body

    view = {"id": "c", "metadata": {"big": 10**30, "name": "Zoë"}}
    assert json.loads(_json(view)) == view
    assert json.loads(json_body(view).body) == view
