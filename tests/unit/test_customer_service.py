"""CustomerService (core_app/services/customers.py) through fakes: reads by tier, PII, RFM, writes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest

from core_app import topics
from core_app.domain.customer import customer_key
from core_app.domain.customer_view import customer_view
from core_app.domain.errors import Conflict, NotFound, Unavailable, ValidationFailed
from core_app.security.errors import FeatureDisabled, Forbidden, Unauthenticated
from core_app.security.flags import RFM_SCORE
from core_app.security.principal import EDIT, READ_PII, VIEW
from core_app.services.customers import CustomerService
from tests.unit.fakes import (
    FakeCustomerStore,
    FakeGuard,
    FakeOwnerClient,
    FakePiiAudit,
    FakeReadCache,
    FakeSealingKeys,
    caller,
    customer_state,
)

MERCHANT, OTHER = str(uuid.uuid4()), str(uuid.uuid4())
CUSTOMER = str(uuid.uuid4())


@dataclass
class World:
    store: FakeCustomerStore = field(default_factory=FakeCustomerStore)
    cache: FakeReadCache = field(default_factory=FakeReadCache)
    owners: FakeOwnerClient = field(default_factory=FakeOwnerClient)
    guard: FakeGuard = field(default_factory=lambda: FakeGuard(installed={MERCHANT, OTHER}))
    keys: FakeSealingKeys = field(default_factory=FakeSealingKeys)
    audit: FakePiiAudit = field(default_factory=FakePiiAudit)
    wait: float = 5.0

    @property
    def service(self) -> CustomerService:
        return CustomerService(
            self.store,
            self.cache,
            self.owners,
            self.guard,
            self.keys,
            self.audit,
            read_recovery_wait=self.wait,
        )


@pytest.fixture
def world() -> World:
    return World()


def stored(**fields: object) -> dict:
    return customer_view(customer_state(MERCHANT, CUSTOMER, **fields))


async def test_the_table_answers_first(world: World) -> None:
    world.owners.table[(MERCHANT, CUSTOMER)] = ("table", stored(version=3))
    world.cache.views[(MERCHANT, CUSTOMER)] = stored(version=1)
    view = await world.service.get(caller(MERCHANT, VIEW), MERCHANT, CUSTOMER)
    assert (view["version"], view["source"]) == (3, "table")
    assert "email" not in view and world.store.calls == ["thresholds"]  # for the segment, then cached


async def test_the_owner_answers_for_a_key_another_worker_holds(world: World) -> None:
    world.owners.table[(MERCHANT, CUSTOMER)] = ("owner", stored(version=2))
    assert (await world.service.get(caller(MERCHANT, VIEW), MERCHANT, CUSTOMER))["source"] == "owner"


async def test_a_key_no_table_holds_comes_from_redis_then_postgres(world: World) -> None:
    world.cache.views[(MERCHANT, CUSTOMER)] = stored(version=1)
    assert (await world.service.get(caller(MERCHANT, VIEW), MERCHANT, CUSTOMER))["source"] == "redis"
    world.cache.views.clear()
    world.store.rows[(MERCHANT, CUSTOMER)] = customer_state(MERCHANT, CUSTOMER, version=4)
    view = await world.service.get(caller(MERCHANT, VIEW), MERCHANT, CUSTOMER)
    assert (view["version"], view["source"]) == (4, "postgres")
    assert world.cache.views[(MERCHANT, CUSTOMER)]["version"] == 4  # cached for the next read


async def test_an_unknown_customer_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        await world.service.get(caller(MERCHANT, VIEW), MERCHANT, CUSTOMER)


async def test_a_recovering_partition_is_waited_for_then_answers(world: World) -> None:
    world.owners.outages = ["partition recovering", "owner unreachable (TimeoutError)"]
    world.owners.table[(MERCHANT, CUSTOMER)] = ("table", stored())
    assert (await world.service.get(caller(MERCHANT, VIEW), MERCHANT, CUSTOMER))["source"] == "table"
    assert world.owners.waited == ["partition recovering", "owner unreachable (TimeoutError)"]


async def test_a_partition_that_stays_away_is_unavailable_not_an_older_copy(world: World) -> None:
    world.wait = 0.0
    world.owners.outages = ["partition recovering"]
    world.cache.views[(MERCHANT, CUSTOMER)] = stored()  # older than the table may be: never served
    with pytest.raises(Unavailable, match="partition recovering"):
        await world.service.get(caller(MERCHANT, VIEW), MERCHANT, CUSTOMER)


async def test_reads_refuse_another_merchant_a_missing_permission_and_no_caller(world: World) -> None:
    world.owners.table[(MERCHANT, CUSTOMER)] = ("table", stored())
    with pytest.raises(Forbidden):
        await world.service.get(caller(OTHER, VIEW), MERCHANT, CUSTOMER)
    with pytest.raises(Forbidden):
        await world.service.get(caller(MERCHANT, READ_PII), MERCHANT, CUSTOMER)  # no VIEW
    with pytest.raises(Unauthenticated):
        await world.service.get(None, MERCHANT, CUSTOMER)


async def test_a_merchant_not_installed_is_not_found(world: World) -> None:
    world.guard.installed = {OTHER}
    with pytest.raises(NotFound, match="merchant"):
        await world.service.get(caller(MERCHANT, VIEW), MERCHANT, CUSTOMER)


async def test_bad_ids_name_the_field(world: World) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await world.service.get(caller(MERCHANT, VIEW), MERCHANT, "nope")
    assert refused.value.field == "customer_id"


async def test_read_pii_attaches_the_email_and_audits_the_read(world: World) -> None:
    world.owners.table[(MERCHANT, CUSTOMER)] = ("table", stored())
    world.store.emails[(MERCHANT, CUSTOMER)] = "ada@example.com"
    view = await world.service.get(caller(MERCHANT, VIEW, READ_PII), MERCHANT, CUSTOMER, transport="grpc")
    assert view["email"] == "ada@example.com"
    assert [(r.customer_id, r.transport) for r in world.audit.reads] == [(CUSTOMER, "grpc")]


async def test_an_erased_customers_email_is_none_and_not_audited(world: World) -> None:
    world.owners.table[(MERCHANT, CUSTOMER)] = ("table", stored())
    world.store.emails[(MERCHANT, CUSTOMER)] = "ada@example.com"
    world.store.shredded.add((MERCHANT, CUSTOMER))
    view = await world.service.get(caller(MERCHANT, VIEW, READ_PII), MERCHANT, CUSTOMER)
    assert (view["email"], view["redacted"]) == (None, True)
    assert world.audit.reads == []


async def test_rfm_score_and_its_refusals(world: World) -> None:
    score = {"recency": 5, "frequency": 4, "monetary": 3}
    world.owners.table[(MERCHANT, CUSTOMER)] = ("table", stored(rfm_score=score))
    assert await world.service.rfm(caller(MERCHANT, VIEW), MERCHANT, CUSTOMER) == score
    with pytest.raises(Forbidden):
        await world.service.rfm(caller(OTHER, VIEW), MERCHANT, CUSTOMER)
    world.guard.disabled_flags.add(RFM_SCORE)
    with pytest.raises(FeatureDisabled):
        await world.service.rfm(caller(MERCHANT, VIEW), MERCHANT, CUSTOMER)


async def test_a_customer_without_a_score_has_no_rfm(world: World) -> None:
    world.owners.table[(MERCHANT, CUSTOMER)] = ("table", stored())
    with pytest.raises(NotFound, match="RFM"):
        await world.service.rfm(caller(MERCHANT, VIEW), MERCHANT, CUSTOMER)


async def test_create_sends_the_sealed_email_to_the_keys_owner(world: World) -> None:
    created = await world.service.create(
        caller(MERCHANT, EDIT), MERCHANT, "Ada@Example.com", {"tier": "gold"}
    )
    [(topic, key, command)] = world.owners.asked
    assert topic == topics.CUSTOMER_COMMANDS and key == customer_key(MERCHANT, created["id"])
    assert command["kind"] == "create" and command["metadata"] == {"tier": "gold"}
    opened = await world.keys.decrypt_email(MERCHANT, created["id"], command["email"])
    assert opened == "ada@example.com" and "ada@example.com" not in str(command)


async def test_create_refusals(world: World) -> None:
    with pytest.raises(Forbidden):
        await world.service.create(caller(MERCHANT, VIEW), MERCHANT, "a@example.com", {})
    with pytest.raises(Forbidden):
        await world.service.create(caller(OTHER, EDIT), MERCHANT, "a@example.com", {})
    with pytest.raises(ValidationFailed) as refused:
        await world.service.create(caller(MERCHANT, EDIT), MERCHANT, None, {})
    assert refused.value.field == "email" and world.owners.asked == []


async def test_the_owners_conflict_reaches_the_caller(world: World) -> None:
    def taken(command: dict) -> dict:
        raise Conflict("email", "another customer of this merchant has this email")

    world.owners.answer = taken
    with pytest.raises(Conflict):
        await world.service.create(caller(MERCHANT, EDIT), MERCHANT, "a@example.com", {})


async def test_update_sends_metadata_and_an_optional_sealed_email(world: World) -> None:
    await world.service.update(caller(MERCHANT, EDIT), MERCHANT, CUSTOMER, None, {"a": 1})
    await world.service.update(caller(MERCHANT, EDIT), MERCHANT, CUSTOMER, "b@example.com", {})
    first, second = (command for _, _, command in world.owners.asked)
    assert first["email"] is None and first["metadata"] == {"a": 1} and first["requested_at_ms"] > 0
    assert await world.keys.decrypt_email(MERCHANT, CUSTOMER, second["email"]) == "b@example.com"


async def test_an_erased_customer_takes_no_new_email(world: World) -> None:
    world.keys.shredded.add((MERCHANT, CUSTOMER))
    with pytest.raises(Conflict, match="erased"):
        await world.service.update(caller(MERCHANT, EDIT), MERCHANT, CUSTOMER, "b@example.com", {})
    assert world.owners.asked == []


async def test_update_of_an_unknown_customer_is_the_owners_not_found(world: World) -> None:
    def unknown(command: dict) -> dict:
        raise NotFound("customer", command["customer_id"])

    world.owners.answer = unknown
    with pytest.raises(NotFound):
        await world.service.update(caller(MERCHANT, EDIT), MERCHANT, CUSTOMER, None, {"a": 1})
    with pytest.raises(Forbidden):
        await world.service.update(caller(MERCHANT, VIEW), MERCHANT, CUSTOMER, None, {"a": 1})
