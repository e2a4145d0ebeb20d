"""The ports the use cases depend on (`typing.Protocol`); adapters implement them, tests fake them
(tests/unit/fakes.py). The composition root (core_app/bootstrap.py) picks the adapters."""

from __future__ import annotations

from typing import Protocol

from core_app.security.principal import Principal


class Guard(Protocol):
    """Authorizes the current caller on a merchant (and checks a feature flag); raises a
    SecurityError (or NotFound for a merchant that is not installed) if not. SecurityLayer is one."""

    async def guard(self, merchant_id: str, permission: str, flag: str | None = None) -> Principal | None: ...


class FeatureFlags(Protocol):
    async def enabled(self, merchant_id: str, flag: str) -> bool: ...


class DataKeys(Protocol):
    """Per-customer envelope encryption of the email (core_app/security/shredding.DataKeyStore)."""

    async def encrypt_email(self, merchant_id: str, customer_id: str, email: str) -> str: ...

    async def decrypt_email(self, merchant_id: str, customer_id: str, token: str) -> str: ...

    async def shred(self, merchant_id: str, customer_id: str) -> bool: ...


# -- below: the ports of each feature (issue 16), one section per feature -------------------------


class EventPublisher(Protocol):
    """Sends one record to a topic by name (core_app/stream_topics.TopicPublisher on Faust)."""

    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, bytes] | None = None
    ) -> None: ...
