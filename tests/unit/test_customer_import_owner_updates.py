"""OwnerUpdates: existing customers to their owners' partitions in bounded commands, and the
confirmations that complete the import."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core_app.customer_import.owner_updates import UPDATE_COMMAND_MAX, OwnerUpdates
from core_app.customer_import.retries import ImportFailed
from core_app.customer_import.tally import Pending
from core_app.domain.customer import customer_key
from core_app.domain.customer_import import ImportedRow
from core_app.routing import key_partition
from tests.support.customer_import import a_job, a_tally, retries

PARTITIONS = 4


class World:
    def __init__(self) -> None:
        self.job = a_job()
        self.tally = a_tally(self.job)
        self.sent: list[tuple[int, dict[str, Any]]] = []
        self.owners = OwnerUpdates(
            self.job, 2, PARTITIONS, "reply:import:x", self.send, retries(), self.tally
        )

    async def send(self, partition: int, command: dict[str, Any]) -> None:
        self.sent.append((partition, command))


def updates(count: int) -> list[tuple[Pending, str]]:
    return [
        (Pending(ImportedRow(n + 2, f"c{n}@example.com", {}), f"h{n}"), f"cust-{n}") for n in range(count)
    ]


async def test_gathered_updates_make_full_commands_and_the_rest_go_at_the_flush() -> None:
    world = World()
    total = 2 * PARTITIONS * UPDATE_COMMAND_MAX
    batches = [updates(total)[start::10] for start in range(10)]  # small batches
    for batch in batches:
        await world.owners.gather(batch)
    assert world.sent and all(len(c["customers"]) == UPDATE_COMMAND_MAX for _, c in world.sent)
    await world.owners.flush()
    assert not world.owners.gathered
    sent = sorted(c["row"] for _, command in world.sent for c in command["customers"])
    assert sent == list(range(2, 2 + total))  # each once
    for partition, command in world.sent:
        for customer in command["customers"]:
            key = customer_key(world.job.merchant_id, customer["customer_id"])
            assert key_partition(key, PARTITIONS) == partition
    assert len(world.owners.awaiting) == len(world.sent)


async def replies(*messages: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    for message in messages:
        yield message


async def test_updates_go_to_their_owners_partition_in_bounded_commands() -> None:
    world = World()
    await world.owners.send(updates(3 * UPDATE_COMMAND_MAX))
    for partition, command in world.sent:
        assert len(command["customers"]) <= UPDATE_COMMAND_MAX
        assert command["reply_to"] == "reply:import:x" and command["kind"] == "import_update"
        for customer in command["customers"]:
            key = customer_key(world.job.merchant_id, customer["customer_id"])
            assert key_partition(key, PARTITIONS) == partition
    sent = sorted(c["row"] for _, command in world.sent for c in command["customers"])
    assert sent == list(range(2, 2 + 3 * UPDATE_COMMAND_MAX))
    assert world.sent[0][1]["command_id"] == f"{world.job.import_id}:2:1"  # run 2, first command


async def test_confirmations_complete_the_updates() -> None:
    world = World()
    await world.owners.send(updates(2))
    errors = [{"row": 3, "error": "the matching customer no longer exists"}]
    answers = [
        {"command_id": command["command_id"], "updated": 1, "errors": errors} for _, command in world.sent
    ]
    stray = {"command_id": "another-run", "updated": 50}
    await world.owners.listen(replies(stray, *answers, answers[0]))  # a replayed answer counts once
    await world.owners.confirmed(0.1)
    assert world.tally.progress.updated == len(answers)
    assert world.tally.progress.failed == len(answers)


async def test_unconfirmed_updates_fail_the_import_after_the_timeout() -> None:
    world = World()
    await world.owners.send(updates(5))
    with pytest.raises(ImportFailed, match="5 updates of existing customers were not confirmed"):
        await world.owners.confirmed(0.01)


async def test_nothing_to_update_is_confirmed_at_once() -> None:
    world = World()
    await world.owners.send([])
    await asyncio.wait_for(world.owners.confirmed(0.01), 1)
    assert world.sent == []
