"""Live updates for WebSocket and GraphQL-subscription clients (docs/decisions.md D34)."""

from core_app.fanout.hub import FanoutHub, Subscription, UpdateFilter, get_hub
from core_app.fanout.messages import CUSTOMER_UPDATED, IMPORT_PROGRESS, Update

__all__ = [
    "CUSTOMER_UPDATED",
    "IMPORT_PROGRESS",
    "FanoutHub",
    "Subscription",
    "Update",
    "UpdateFilter",
    "get_hub",
]
