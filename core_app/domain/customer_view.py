"""The public shape of a customer, shared by the read use cases and the command agent (which answers a
write with it). Pure: no email ciphertext or hash, both internal."""

from __future__ import annotations

from typing import Any

from core_app.domain.customer import CustomerState


def customer_view(state: CustomerState) -> dict[str, Any]:
    """The public shape of a customer: no email ciphertext or hash, both internal."""
    return {
        "id": state.customer_id,
        "merchant_id": state.merchant_id,
        "rfm_score": state.rfm_score,
        "metadata": state.metadata,
        "version": state.version,
        "redacted": state.redacted,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
    }


def stored_view(stored: dict[str, Any]) -> dict[str, Any]:
    """customer_view of a stored state dict, without building the CustomerState (the hot read path).

    A unit test keeps it equal to `customer_view(CustomerState.from_dict(stored))`.
    """
    return {
        "id": stored["customer_id"],
        "merchant_id": stored["merchant_id"],
        "rfm_score": stored.get("rfm_score", {}),
        "metadata": stored.get("metadata", {}),
        "version": stored.get("version", 0),
        "redacted": stored.get("redacted_at") is not None,
        "created_at": stored.get("created_at"),
        "updated_at": stored.get("updated_at"),
    }
