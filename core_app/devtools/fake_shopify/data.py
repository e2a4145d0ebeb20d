"""The fake shops' customers: deterministic, with the quirks real shops have.

Every 7th customer has an Arabic or Hebrew name, every 11th emoji in the name, every 13th no email,
every 17th the email of an earlier customer in another case (Shopify allows that; the service must
dedupe case-insensitively), and names may be empty.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

FIRST_ID = 7_000_000_000_001
RTL_NAMES = [("فاطمة", "الزهراء"), ("יעל", "כהן"), ("محمد", "العلي"), ("נועה", "לוי")]
EMOJI_NAMES = [("Zoë 🌸", "Ng"), ("🎉Party", "Person"), ("Renée", "O'Brien 🍀")]
PLAIN_NAMES = [("Ada", "Lovelace"), ("Grace", "Hopper"), ("Alan", "Turing"), ("", "Solo")]


@dataclass(slots=True)
class FakeCustomer:
    id: int
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    orders: int
    spent_cents: int
    tags: list[str]
    marketing: str
    created_at: float
    updated_at: float

    @property
    def gid(self) -> str:
        return f"gid://shopify/Customer/{self.id}"

    def rest(self) -> dict[str, Any]:
        """The Admin REST `customer` object (the fields the import uses, as Shopify spells them)."""
        return {
            "id": self.id,
            "email": self.email,
            "first_name": self.first_name or None,
            "last_name": self.last_name or None,
            "phone": self.phone,
            "orders_count": self.orders,
            "total_spent": f"{self.spent_cents / 100:.2f}",
            "currency": "USD",
            "tags": ", ".join(self.tags),
            "state": "enabled",
            "verified_email": self.email is not None,
            "email_marketing_consent": {
                "state": self.marketing,
                "opt_in_level": "single_opt_in",
                "consent_updated_at": iso(self.created_at),
            },
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }

    def graphql(self) -> dict[str, Any]:
        """The Admin GraphQL `Customer` node (bulk JSONL lines and connections)."""
        return {
            "id": self.gid,
            "email": self.email,
            "firstName": self.first_name or None,
            "lastName": self.last_name or None,
            "phone": self.phone,
            "numberOfOrders": str(self.orders),
            "amountSpent": {"amount": f"{self.spent_cents / 100:.2f}", "currencyCode": "USD"},
            "tags": list(self.tags),
            "emailMarketingConsent": {"marketingState": self.marketing.upper()},
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


def _name(index: int, rng: random.Random) -> tuple[str, str]:
    if index % 7 == 0:
        return rng.choice(RTL_NAMES)
    if index % 11 == 0:
        return rng.choice(EMOJI_NAMES)
    return rng.choice(PLAIN_NAMES)


def _email(index: int, first: FakeCustomer | None) -> str | None:
    if index % 13 == 0:
        return None
    if index % 17 == 0 and first is not None and first.email is not None:
        return first.email.upper()  # the same mailbox as an earlier customer, other case
    return f"customer{index}@example.com"


@dataclass
class CustomerBook:
    """A shop's customers, ordered by id (as Shopify pages them)."""

    customers: list[FakeCustomer] = field(default_factory=list)
    clock: float = field(default_factory=lambda: time.time() - 86_400)

    @classmethod
    def generate(cls, count: int, seed: int = 17) -> CustomerBook:
        rng = random.Random(seed)
        book = cls()
        for index in range(1, count + 1):
            first_name, last_name = _name(index, rng)
            earlier = book.customers[index // 2 - 1] if index > 2 else None
            stamp = book.clock + index * 0.001
            book.customers.append(
                FakeCustomer(
                    id=FIRST_ID + index - 1,
                    first_name=first_name,
                    last_name=last_name,
                    email=_email(index, earlier),
                    phone=f"+1555{index:07d}" if index % 3 == 0 else None,
                    orders=rng.randint(0, 40),
                    spent_cents=rng.randint(0, 500_000),
                    tags=["vip"] if index % 10 == 0 else [],
                    marketing="subscribed" if index % 2 else "not_subscribed",
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
        return book

    def touch(self, count: int) -> list[FakeCustomer]:
        """Change `count` customers now (spread over the book), as edits in the admin would."""
        step = max(1, len(self.customers) // max(count, 1))
        changed = self.customers[::step][:count]
        now = time.time()
        for offset, customer in enumerate(changed):
            customer.orders += 1
            customer.updated_at = now + offset * 1e-6
        return changed

    def page(self, after_id: int, limit: int, updated_min: float | None) -> list[FakeCustomer]:
        start = max(0, after_id - FIRST_ID + 1) if after_id else 0  # ids are contiguous
        out: list[FakeCustomer] = []
        for customer in self.customers[start:]:
            if updated_min is None or customer.updated_at >= updated_min:
                out.append(customer)
                if len(out) == limit:
                    break
        return out
