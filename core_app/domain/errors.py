"""Domain errors carry the field at fault so every transport can name it."""

from __future__ import annotations


class DomainError(Exception):
    """Base for errors a caller can fix."""


class ValidationFailed(DomainError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(DomainError):
    def __init__(self, entity: str, key: str) -> None:
        super().__init__(f"{entity} {key} not found")
        self.entity = entity
        self.key = key


class Conflict(DomainError):
    """The request contradicts existing state (a taken email, a redacted customer)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Unavailable(DomainError):
    """A dependency did not answer in time; the caller may retry."""


class FeatureDisabled(DomainError):
    """A feature flag is off for this merchant (REST 403, gRPC PERMISSION_DENIED)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
