"""`/health`'s kafka_data check: each piece of evidence that the broker lost the service's data, and
`/ready`'s group_stable (core_app/broker_watch.py, core_app/kafka_transport.py; D115, D116)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from core_app.broker_watch import BrokerWatch
from core_app.kafka_transport import group_stable, in_group


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watch() -> tuple[BrokerWatch, Clock]:
    clock = Clock()
    return BrokerWatch(hold_seconds=120, membership_grace=30, clock=clock), clock


def test_up_while_nothing_was_lost() -> None:
    broker, clock = watch()
    for generation in (0, 1, 1, 4):
        broker.on_assignment(generation)
    broker.on_commit({("rfm.updated", 0): 10}, committed=True)
    broker.on_committed_read({("rfm.updated", 0): 12, ("rfm.updated", 1): None})
    broker.on_membership(in_group=True)
    clock.now += 500
    assert broker.status() == "UP"


def test_a_changelog_behind_local_state_holds_down_for_the_hold_time() -> None:
    broker, clock = watch()
    broker.lost_data("changelog", "core-customers-changelog[3] ended at -1 below the persisted 97")
    assert broker.status().startswith("DOWN: the broker lost data: core-customers-changelog[3]")
    clock.now += 119
    assert broker.status() != "UP"
    clock.now += 2
    assert broker.status() == "UP"


def test_a_generation_that_goes_back_means_the_coordinator_forgot_the_group() -> None:
    broker, clock = watch()
    broker.on_assignment(7)
    broker.on_assignment(-1)  # not a generation: ignored
    assert broker.status() == "UP"
    broker.on_assignment(1)
    assert "went back from generation 7 to 1" in broker.status()
    clock.now += 121
    broker.on_assignment(2)  # the new group's numbering is the reference from now on
    assert broker.status() == "UP"


def test_committed_offsets_below_ours_mean_the_offsets_were_lost() -> None:
    broker, _ = watch()
    tp = ("rfm.updated", 2)
    broker.on_commit({tp: 500}, committed=True)
    broker.on_commit({tp: 400}, committed=True)  # ours is the highest we committed
    broker.on_committed_read({tp: 500})
    assert broker.status() == "UP"
    broker.on_committed_read({tp: None})  # gone: the group's offsets were wiped
    assert "committed offsets went back on 1 partitions" in broker.status()
    assert "500 -> None" in broker.status()


def test_refused_commits_turn_down_only_when_they_last_longer_than_a_rebalance() -> None:
    broker, clock = watch()
    tp = ("rfm.updated", 0)
    broker.on_commit({tp: 5}, committed=False)  # "already rebalanced": normal in a rebalance
    clock.now += 29
    broker.on_commit({tp: 5}, committed=False)
    assert broker.status() == "UP"
    clock.now += 2
    assert broker.status().startswith("DOWN: offset commits refused for 31 s")
    broker.on_commit({tp: 5}, committed=True)
    assert broker.status() == "UP"


def test_a_member_out_of_its_group_turns_down_after_the_grace_but_not_before_it_first_joined() -> None:
    broker, clock = watch()
    broker.on_membership(in_group=False)  # starting: not joined yet
    clock.now += 100
    assert broker.status() == "UP"
    broker.on_assignment(3)
    broker.on_membership(in_group=False)  # the coordinator did not know the member any more
    clock.now += 31
    broker.on_membership(in_group=False)
    assert "the consumer is out of its group for 31 s" in broker.status()
    broker.on_assignment(4)
    assert broker.status() == "UP"


def consumer_app(**state: Any) -> Any:
    subscription = SimpleNamespace(assignment=state.get("assignment", object()))
    coordinator = SimpleNamespace(
        generation=state.get("generation", 5),
        member_id=state.get("member_id", "faust-1"),
        _subscription=SimpleNamespace(subscription=subscription),
        need_rejoin=lambda _subscription: state.get("rejoin", False),
    )
    consumer = SimpleNamespace(_thread=SimpleNamespace(_consumer=SimpleNamespace(_coordinator=coordinator)))
    return SimpleNamespace(
        consumer=consumer,
        rebalancing=state.get("rebalancing", False),
        consumer_generation_id=state.get("app_generation", 5),
    )


def test_group_stable_needs_the_current_generations_assignment_and_no_rebalance() -> None:
    assert group_stable(consumer_app())
    assert in_group(consumer_app())
    assert not group_stable(consumer_app(rebalancing=True))
    assert not group_stable(consumer_app(rejoin=True))  # aiokafka was told to rejoin
    assert not group_stable(consumer_app(app_generation=4))  # generation 5's assignment not handed over
    assert not group_stable(consumer_app(generation=-1, member_id=""))  # the coordinator forgot us
    assert not in_group(consumer_app(generation=-1, member_id=""))
    assert not group_stable(SimpleNamespace(consumer=SimpleNamespace(), rebalancing=False))  # not started
