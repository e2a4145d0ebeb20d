"""In-memory implementations of the ports (core_app/services/ports.py) for the unit tests: no
PostgreSQL, Redis or Kafka. One section per feature."""

from __future__ import annotations

from dataclasses import dataclass, field

from core_app.domain.errors import NotFound
from core_app.security.errors import FeatureDisabled, Forbidden
from core_app.security.principal import Principal
from core_app.security.shredding import KeyShredded


@dataclass
class FakePublisher:
    """EventPublisher: keeps what was sent, in order."""

    sent: list[tuple[str, str, bytes, dict[str, bytes] | None]] = field(default_factory=list)

    async def publish(
        self, topic: str, key: str, value: bytes, headers: dict[str, bytes] | None = None
    ) -> None:
        self.sent.append((topic, key, value, headers))

    def on(self, topic: str) -> list[tuple[str, bytes]]:
        return [(key, value) for name, key, value, _ in self.sent if name == topic]


@dataclass
class FakeGuard:
    """Guard and FeatureFlags: merchants installed, permissions granted, flags off, per test."""

    installed: set[str] = field(default_factory=set)
    permissions: set[str] = field(default_factory=set)
    disabled_flags: set[str] = field(default_factory=set)
    checked: list[tuple[str, str, str | None]] = field(default_factory=list)

    async def guard(self, merchant_id: str, permission: str, flag: str | None = None) -> Principal | None:
        self.checked.append((merchant_id, permission, flag))
        if permission not in self.permissions:
            raise Forbidden(f"missing permission {permission}")
        if merchant_id not in self.installed:
            raise NotFound("merchant", merchant_id)
        if flag is not None and flag in self.disabled_flags:
            raise FeatureDisabled(flag)
        return None

    async def enabled(self, merchant_id: str, flag: str) -> bool:
        return flag not in self.disabled_flags


@dataclass
class FakeDataKeys:
    """DataKeys: a reversible 'seal' so tests can tell sealed from plain; shredded keys refuse."""

    shredded: set[tuple[str, str]] = field(default_factory=set)

    async def encrypt_email(self, merchant_id: str, customer_id: str, email: str) -> str:
        return f"sealed:{merchant_id}:{customer_id}:{email[::-1]}"

    async def decrypt_email(self, merchant_id: str, customer_id: str, token: str) -> str:
        if (merchant_id, customer_id) in self.shredded:
            raise KeyShredded(f"{merchant_id}/{customer_id}")
        prefix = f"sealed:{merchant_id}:{customer_id}:"
        assert token.startswith(prefix), "sealed for another customer"
        return token[len(prefix) :][::-1]

    async def shred(self, merchant_id: str, customer_id: str) -> bool:
        fresh = (merchant_id, customer_id) not in self.shredded
        self.shredded.add((merchant_id, customer_id))
        return fresh


# -- below: the fakes of each feature (issue 16), one section per feature -------------------------
