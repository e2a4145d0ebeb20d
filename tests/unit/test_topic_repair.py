"""What the worker asks of the broker about its topics (core_app/topic_repair.py, D208)."""

from __future__ import annotations

import aiokafka.client
import pytest
from aiokafka.protocol.metadata import MetadataRequest, MetadataRequest_v5

from core_app.settings import Settings
from core_app.topic_repair import (
    NoAutoCreateMetadataRequest,
    co_partitioned,
    forbid_auto_creation,
    wanted_topics,
)
from core_app.topics import CONSUMED, INTERNAL, PRODUCED


def test_metadata_requests_never_ask_the_broker_to_create_a_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiokafka.client, "MetadataRequest", MetadataRequest)
    forbid_auto_creation()
    built = aiokafka.client.MetadataRequest(["core-customers-changelog"]).build(MetadataRequest_v5)
    assert built.allow_auto_topic_creation is False
    assert built.topics == ["core-customers-changelog"]
    assert NoAutoCreateMetadataRequest([], True).build(MetadataRequest_v5).allow_auto_topic_creation is False
    # aiokafka's own default, which Tansu and an auto-creating Kafka follow with their own partitions
    assert MetadataRequest(["x"]).build(MetadataRequest_v5).allow_auto_topic_creation is True


def test_every_topic_with_the_tables_partitions_and_the_changelogs_compacted() -> None:
    wanted = wanted_topics(Settings(kafka_topic_partitions=6), {"core-customers-changelog": 6})
    assert wanted["core-customers-changelog"] == (6, True)
    for name in CONSUMED + PRODUCED + INTERNAL:
        assert wanted[name] == (6, False)


def test_only_the_topics_keyed_like_the_tables_are_judged_by_their_partitions() -> None:
    judged = co_partitioned({"core-customers-changelog": 6})
    assert "core-customers-changelog" in judged
    assert set(CONSUMED + INTERNAL) <= judged
    assert not set(PRODUCED) & judged
