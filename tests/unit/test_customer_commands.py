"""The owner's command handlers (agents/customer_commands.py) through fakes: create, update, repair,
replays, conflicts and erased customers, and the reply each one publishes."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import pytest

from agents.customer_commands import CommandDeps, handle
from core_app import topics
from core_app.domain.customer import customer_key
from core_app.domain.timeline import describe
from tests.unit.fakes import (
    FakeCodec,
    FakeCustomerStore,
    FakeCustomerTable,
    FakePublisher,
    FakeReplies,
    FakeSealingKeys,
    customer_state,
)

MERCHANT = str(uuid.uuid4())
CUSTOMER = str(uuid.uuid4())
KEY = customer_key(MERCHANT, CUSTOMER)


@dataclass
class Owner:
    store: FakeCustomerStore = field(default_factory=lambda: FakeCustomerStore(merchants={MERCHANT}))
    keys: FakeSealingKeys = field(default_factory=FakeSealingKeys)
    publisher: FakePublisher = field(default_factory=FakePublisher)
    table: FakeCustomerTable = field(default_factory=FakeCustomerTable)
    replies: FakeReplies = field(default_factory=FakeReplies)
    woken: list[tuple[str, str]] = field(default_factory=list)

    @property
    def deps(self) -> CommandDeps:
        async def wake(merchant_id: str, customer_id: str) -> None:
            self.woken.append((merchant_id, customer_id))

        return CommandDeps(self.store, self.keys, self.publisher, FakeCodec(), self.table, wake, self.replies)

    async def send(self, kind: str, **fields: Any) -> dict[str, Any]:
        command = {"kind": kind, "merchant_id": MERCHANT, "customer_id": CUSTOMER, "key": KEY}
        command |= {"request_id": str(uuid.uuid4()), "reply_to": "reply:x"} | fields
        event = SimpleNamespace(value=json.dumps(command).encode(), message=SimpleNamespace(partition=0))
        await handle(self.deps, event)  # type: ignore[arg-type]
        channel, reply = self.replies.sent[-1]
        assert channel == "reply:x"
        return reply


def facts(entry: dict[str, Any]) -> dict[str, Any]:
    return {"kind": entry["kind"], "change": entry["change"], "source": entry["source"]}


@pytest.fixture
def owner() -> Owner:
    return Owner()


async def sealed(owner: Owner, email: str) -> str:
    return await owner.keys.encrypt_email(MERCHANT, CUSTOMER, email)


async def test_create_inserts_wakes_parked_events_saves_and_announces(owner: Owner) -> None:
    reply = await owner.send("create", email=await sealed(owner, "ada@example.com"), metadata={"a": 1})
    assert reply["ok"] and reply["result"]["id"] == CUSTOMER and "email" not in reply["result"]
    assert owner.store.emails[(MERCHANT, CUSTOMER)] == "ada@example.com"  # plaintext only to PostgreSQL
    assert owner.woken == [(MERCHANT, CUSTOMER)]
    state = owner.table.states[KEY]
    assert state.email == await sealed(owner, "ada@example.com")  # the table keeps the sealed email
    [(key, value)] = owner.publisher.on(topics.CUSTOMER_CREATED)
    assert key == KEY and json.loads(value)["email_hash"] == "hash:ada@example.com"
    assert json.loads(value)["email"] == await sealed(owner, "ada@example.com")  # Campaign unseals it


async def test_api_writes_leave_timeline_entries_naming_who_and_how(owner: Owner) -> None:
    who = {"transport": "graphql", "actor": "user-7"}
    await owner.send("create", email=await sealed(owner, "ada@example.com"), metadata={"a": 1}, **who)
    email = await sealed(owner, "new@example.com")
    await owner.send("update", email=email, metadata={"b": 2, "phone": "555"}, requested_at_ms=10**13, **who)
    created, updated = owner.table.timeline
    assert (created["kind"], created["version"]) == ("created", 1)
    assert describe(**facts(created)) == "created through the API (graphql) by user-7"
    assert created["source"] == who and created["change"] == {"metadata_keys": ["a"]}
    assert (updated["kind"], updated["version"], updated["at"]) == ("updated", 2, 10**13)
    assert (
        describe(**facts(updated)) == "profile updated through the API (graphql) by user-7: metadata b; email"
    )
    assert "new@example.com" not in json.dumps(owner.table.timeline)  # no PII in entries


async def test_a_replayed_create_is_answered_again_not_reapplied(owner: Owner) -> None:
    owner.table.states[KEY] = customer_state(MERCHANT, CUSTOMER, version=7)
    reply = await owner.send("create", email=await sealed(owner, "ada@example.com"), metadata={})
    assert reply["ok"] and reply["result"]["version"] == 7
    assert owner.store.calls == [] and owner.publisher.sent == []


async def test_a_taken_email_is_a_conflict_reply(owner: Owner) -> None:
    owner.store.emails[(MERCHANT, "someone-else")] = "ada@example.com"
    reply = await owner.send("create", email=await sealed(owner, "ada@example.com"), metadata={})
    assert (reply["ok"], reply["kind"], reply["field"]) == (False, "conflict", "email")
    assert KEY not in owner.table.states and owner.publisher.sent == []


async def test_an_unknown_merchant_is_a_not_found_reply(owner: Owner) -> None:
    owner.store.merchants.clear()
    reply = await owner.send("create", email=await sealed(owner, "ada@example.com"), metadata={})
    assert reply["kind"] == "not_found" and reply["message"].startswith("merchant")


async def test_a_customer_erased_meanwhile_cannot_be_created(owner: Owner) -> None:
    email = await sealed(owner, "ada@example.com")
    owner.keys.shredded.add((MERCHANT, CUSTOMER))
    reply = await owner.send("create", email=email, metadata={})
    assert (reply["kind"], reply["field"]) == ("conflict", "customer_id") and "erased" in reply["message"]
    assert owner.store.calls == []


async def test_update_merges_metadata_changes_the_email_and_announces(owner: Owner) -> None:
    owner.table.states[KEY] = customer_state(MERCHANT, CUSTOMER, metadata={"a": 1}, version=1)
    email = await sealed(owner, "new@example.com")
    reply = await owner.send("update", email=email, metadata={"b": 2}, requested_at_ms=1_000)
    assert reply["ok"] and reply["result"]["metadata"] == {"a": 1, "b": 2}
    state = owner.table.states[KEY]
    assert (state.email, state.email_hash) == (email, "hash:new@example.com")
    [(key, value)] = owner.publisher.on(topics.CUSTOMER_UPDATED)
    assert key == KEY and json.loads(value)["changes"] == ["PROFILE"]


async def test_update_loads_a_customer_the_table_does_not_hold_yet(owner: Owner) -> None:
    owner.store.rows[(MERCHANT, CUSTOMER)] = customer_state(MERCHANT, CUSTOMER)
    reply = await owner.send("update", email=None, metadata={"b": 2}, requested_at_ms=1_000)
    assert reply["ok"] and owner.store.calls == ["fetch"] and KEY in owner.table.states


async def test_update_of_an_unknown_customer_is_not_found(owner: Owner) -> None:
    reply = await owner.send("update", email=None, metadata={}, requested_at_ms=1_000)
    assert reply["kind"] == "not_found" and reply["message"].startswith("customer")


async def test_an_erased_customer_is_not_updated(owner: Owner) -> None:
    owner.table.states[KEY] = customer_state(MERCHANT, CUSTOMER, redacted_at="2026-01-02T00:00:00Z")
    reply = await owner.send("update", email=None, metadata={"b": 2}, requested_at_ms=1_000)
    assert (reply["kind"], reply["field"]) == ("conflict", "customer_id")
    assert owner.publisher.sent == []


async def test_a_replayed_update_is_answered_again_not_reapplied(owner: Owner) -> None:
    owner.table.states[KEY] = customer_state(MERCHANT, CUSTOMER, applied_as_of={"profile": 2_000})
    reply = await owner.send("update", email=None, metadata={"b": 2}, requested_at_ms=1_000)
    assert reply["ok"] and reply["result"]["metadata"] == {} and owner.publisher.sent == []


async def test_an_update_to_a_taken_email_is_a_conflict(owner: Owner) -> None:
    owner.table.states[KEY] = customer_state(MERCHANT, CUSTOMER)
    owner.store.emails[(MERCHANT, "someone-else")] = "new@example.com"
    email = await sealed(owner, "new@example.com")
    reply = await owner.send("update", email=email, metadata={}, requested_at_ms=1_000)
    assert (reply["kind"], reply["field"]) == ("conflict", "email") and owner.publisher.sent == []


async def test_repair_merges_a_misplaced_copy_once(owner: Owner) -> None:
    owner.table.states[KEY] = customer_state(MERCHANT, CUSTOMER, version=2, applied_as_of={"rfm": 10})
    copy = customer_state(MERCHANT, CUSTOMER, version=3, applied_as_of={"points": 20})
    reply = await owner.send("repair", state=copy.to_dict())
    merged = owner.table.states[KEY]
    assert reply["ok"] and merged.version > 3 and merged.applied_as_of == {"rfm": 10, "points": 20}
    assert len(owner.publisher.on(topics.CUSTOMER_UPDATED)) == 1
    await owner.send("repair", state=copy.to_dict())  # replayed: the owner already holds it
    assert len(owner.publisher.on(topics.CUSTOMER_UPDATED)) == 1


async def test_an_unexpected_failure_is_an_opaque_error_reply(owner: Owner) -> None:
    async def broken(merchant_id: str, customer_id: str) -> None:
        raise KeyError("boom")

    owner_deps = replace(owner.deps, wake=broken)
    command: dict[str, Any] = {"kind": "create", "merchant_id": MERCHANT, "customer_id": CUSTOMER, "key": KEY}
    command |= {
        "request_id": "r",
        "reply_to": "reply:y",
        "email": await sealed(owner, "a@b.co"),
        "metadata": {},
    }
    event = SimpleNamespace(value=json.dumps(command).encode(), message=SimpleNamespace(partition=0))
    await handle(owner_deps, event)  # type: ignore[arg-type]
    error = {"ok": False, "kind": "error", "field": None, "message": "internal error: KeyError"}
    assert owner.replies.sent[-1] == ("reply:y", error)
