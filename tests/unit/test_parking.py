"""Parked records keep the producer's headers byte for byte (agents/parking.py)."""

import json

from agents.parking import decoded_headers, encoded_headers


def test_headers_survive_the_parking_table() -> None:
    headers = [("trace", b"\x00\xffid"), ("source_topic", b"rfm.updated")]
    stored = json.loads(encoded_headers(headers))  # what the JSONB column holds
    assert decoded_headers(stored) == headers
    assert decoded_headers(json.loads(encoded_headers(None))) == []
    assert decoded_headers(json.loads(encoded_headers({"a": "b"}))) == [("a", b"b")]
