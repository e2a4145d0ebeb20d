"""The forward of a misrouted event keeps the producer's headers and says where it came from."""

from types import SimpleNamespace

from agents.repartition import forward_headers


def event(headers: object) -> SimpleNamespace:
    message = SimpleNamespace(topic="rfm.updated", partition=3, offset=42, key=b"m:c", timestamp=1.5)
    return SimpleNamespace(message=message, headers=headers)


def test_forward_headers_keep_the_producers_and_replace_ours() -> None:
    got = forward_headers(event([("trace", b"t-1"), ("source_topic", b"spoofed")]), "rfm.updated")
    # Ours first (the first source_topic picks the parser), the producer's after, a clash renamed (D150).
    assert got == [
        ("source_topic", b"rfm.updated"),
        ("source_key", b"m:c"),
        ("source_timestamp", b"1500"),
        ("trace", b"t-1"),
        ("original.source_topic", b"spoofed"),
        ("forwarded_from", b"rfm.updated/3/42"),
    ]


def test_forward_headers_accept_a_mapping_or_none() -> None:
    assert ("trace", b"t-2") in forward_headers(event({"trace": "t-2"}), "points.updated")
    assert [name for name, _ in forward_headers(event(None), "points.updated")] == [
        "source_topic",
        "source_key",
        "source_timestamp",
        "forwarded_from",
    ]


def test_only_customer_shaped_keys_are_forwarded_before_decoding() -> None:
    from agents.repartition import customer_shaped

    assert customer_shaped(b"m:c") == "m:c"
    assert customer_shaped("m:c") == "m:c"
    assert customer_shaped(None) is None
    assert customer_shaped(b"order-42") is None  # decoded first, then re-keyed by its event
    assert customer_shaped(b"\xff:\xfe") is None
