"""What a single read adds (core_app/services/customers.py, customer_pii.py) through fakes: the
segment under the merchant's cached thresholds, `fields=` / `include=` projection, and UnsealEmail
(the permission, the audit, erasure and a foreign value refused)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from core_app.domain.customer_view import customer_view
from core_app.domain.errors import Conflict, NotFound, ValidationFailed
from core_app.security.errors import Forbidden
from core_app.security.principal import EDIT, READ_PII, VIEW
from tests.unit.fakes import caller, customer_state
from tests.unit.test_customer_service import CUSTOMER, MERCHANT, OTHER, World

THRESHOLDS = {
    "recency": {"min": 7, "max": 60},
    "frequency": {"min": 2, "max": 10},
    "monetary": {"min": 50, "max": 1000},
}
CHAMPION = {"recency": 3, "frequency": 12, "monetary": 2000}


def in_table(world: World, **fields: Any) -> None:
    view = customer_view(customer_state(MERCHANT, CUSTOMER, **fields))
    world.owners.table[(MERCHANT, CUSTOMER)] = ("table", view)


async def test_a_read_states_its_segment_reading_the_thresholds_once() -> None:
    world = World()
    world.store.thresholds[MERCHANT] = THRESHOLDS
    in_table(world, rfm_score=CHAMPION)
    service = world.service
    for _ in range(3):
        assert (await service.get(caller(MERCHANT, VIEW), MERCHANT, CUSTOMER))["segment"] == "champions"
    assert world.store.calls == ["thresholds"]  # cached per worker (THRESHOLDS_TTL)
    in_table(world, rfm_score={})
    assert (await service.get(caller(MERCHANT, VIEW), MERCHANT, CUSTOMER))["segment"] == "unscored"


async def test_a_slow_settings_read_leaves_the_segment_out_not_the_read() -> None:
    world = World()
    in_table(world, rfm_score=CHAMPION)

    async def hangs(merchant_id: str) -> tuple[dict[str, Any] | None]:
        await asyncio.sleep(5)
        return (THRESHOLDS,)

    world.store.rfm_thresholds = hangs  # type: ignore[method-assign]
    view = await world.service.get(caller(MERCHANT, VIEW), MERCHANT, CUSTOMER)
    assert view["segment"] is None and view["version"] == 0


async def test_fields_and_include_project_the_single_read_and_skip_what_is_not_asked() -> None:
    world = World()
    in_table(world, rfm_score=CHAMPION, metadata={"tags": ["vip"], "points": {"balance": 5}, "locale": "fr"})
    world.store.emails[(MERCHANT, CUSTOMER)] = "ada@example.com"
    reader = caller(MERCHANT, VIEW, READ_PII)
    view = await world.service.get(reader, MERCHANT, CUSTOMER, fields="id,metadata", include="tags,points")
    assert view == {
        "id": CUSTOMER,
        "metadata": {"tags": ["vip"], "points": {"balance": 5}},
        "source": "table",
    }
    assert world.store.calls == [] and world.audit.reads == []  # no segment, no email asked: none read
    with pytest.raises(ValidationFailed) as refused:
        await world.service.get(reader, MERCHANT, CUSTOMER, fields="id,secret")
    assert refused.value.field == "fields"
    with pytest.raises(ValidationFailed) as refused:
        await world.service.get(reader, MERCHANT, CUSTOMER, include=["ok", ""])
    assert refused.value.field == "include"


async def unseal(world: World, who: Any, sealed: Any, customer: str = CUSTOMER) -> str:
    return await world.service.unseal_email(who, MERCHANT, customer, sealed, transport="grpc:unseal")


async def test_unseal_opens_the_events_email_for_the_pii_scope_and_audits_it() -> None:
    world = World()
    sealed = await world.keys.encrypt_email(MERCHANT, CUSTOMER, "ada@example.com")
    assert await unseal(world, caller(MERCHANT, VIEW, READ_PII), sealed) == "ada@example.com"
    [read] = world.audit.reads
    assert (read.customer_id, read.transport) == (CUSTOMER, "grpc:unseal")
    for refused_caller in (caller(MERCHANT, VIEW), caller(MERCHANT, EDIT), caller(OTHER, VIEW, READ_PII)):
        with pytest.raises(Forbidden):
            await unseal(world, refused_caller, sealed)
    assert len(world.audit.reads) == 1


async def test_unseal_refuses_after_erasure_and_for_another_customers_value() -> None:
    world = World()
    reader = caller(MERCHANT, VIEW, READ_PII)
    sealed = await world.keys.encrypt_email(MERCHANT, CUSTOMER, "ada@example.com")
    other = str(uuid.uuid4())
    with pytest.raises(ValidationFailed) as refused:
        await unseal(world, reader, sealed, customer=other)  # bound to its own customer
    assert refused.value.field == "sealed_email"
    for bad in ("", "plain@example.com", None, "ce1:" + "x" * 5000):
        with pytest.raises(ValidationFailed):
            await unseal(world, reader, bad)
    world.keys.shredded.add((MERCHANT, CUSTOMER))
    world.store.emails[(MERCHANT, CUSTOMER)] = "ada@example.com"  # the row stays
    with pytest.raises(ValidationFailed):  # no live key, not erased: the value was never its own
        await unseal(world, reader, sealed)
    world.store.shredded.add((MERCHANT, CUSTOMER))  # erased: the key is a tombstone
    with pytest.raises(Conflict) as erased:
        await unseal(world, reader, sealed)
    assert "erased" in erased.value.reason
    world.keys.shredded.add((MERCHANT, other))
    with pytest.raises(NotFound):
        await unseal(world, reader, sealed, customer=other)  # no such customer at all
    assert world.audit.reads == []
