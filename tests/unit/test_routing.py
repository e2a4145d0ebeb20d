import uuid

from aiokafka.partitioner import DefaultPartitioner

from core_app.routing import key_partition, same_worker


def test_partition_is_what_kafkas_default_partitioner_picks_for_the_raw_key() -> None:
    partitions = list(range(12))
    for _ in range(200):
        key = f"{uuid.uuid4()}:{uuid.uuid4()}"
        assert key_partition(key, 12) == DefaultPartitioner()(key.encode(), partitions, partitions)


def test_same_worker_ignores_a_trailing_slash() -> None:
    assert same_worker("http://10.0.0.5:8080/", "http://10.0.0.5:8080")
    assert not same_worker("http://10.0.0.6:8080", "http://10.0.0.5:8080")


def test_murmur2_equals_aiokafkas_for_every_tail_length() -> None:
    import os

    from aiokafka.partitioner import murmur2 as reference

    from core_app.routing import murmur2

    for length in range(0, 120):
        for _ in range(10):
            data = os.urandom(length)
            assert murmur2(data) == reference(data)
    key = "é-merchant:ü-customer".encode()
    assert murmur2(key) == reference(key)


def test_partitions_are_remembered_per_partition_count_within_a_bound(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from core_app import routing

    monkeypatch.setattr(routing, "PARTITION_MEMO_KEYS", 3)
    monkeypatch.setattr(routing, "_partition_memos", {})
    keys = [f"{uuid.uuid4()}:{uuid.uuid4()}" for _ in range(10)]
    partitions = list(range(12))
    for key in keys + keys:  # the second pass reads the memo (for the keys still in it)
        assert key_partition(key, 12) == DefaultPartitioner()(key.encode(), partitions, partitions)
        assert key_partition(key, 5) == DefaultPartitioner()(key.encode(), list(range(5)), list(range(5)))
    assert all(len(memo) <= 3 for memo in routing._partition_memos.values())
    assert sorted(routing._partition_memos) == [5, 12]
