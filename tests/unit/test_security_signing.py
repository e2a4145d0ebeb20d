"""REST request signatures: canonical form, freshness, constant-time check."""

import time

import pytest

from core_app.security.errors import Unauthenticated
from core_app.security.signing import (
    canonical_request,
    check_nonce,
    check_signature,
    check_timestamp,
    sign,
    signed_headers,
)

SECRET = "lns_unit-test-secret"


def test_canonical_form_binds_method_path_query_timestamp_and_body() -> None:
    text = canonical_request("get", "/core/v1/customers?merchant_id=m", "1700000000", "n" * 16, b"{}")
    assert text == (
        b"GET\n/core/v1/customers?merchant_id=m\n1700000000\nnnnnnnnnnnnnnnnn\n"
        b"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )


def test_headers_verify() -> None:
    headers = signed_headers("lnk_x", SECRET, "POST", "/core/v1/customers", b'{"a":1}')
    stamp, nonce = headers["X-Timestamp"], headers["X-Nonce"]
    check_signature(SECRET, headers["X-Signature"], "POST", "/core/v1/customers", stamp, nonce, b'{"a":1}')
    again = signed_headers("lnk_x", SECRET, "POST", "/core/v1/customers", b'{"a":1}', int(stamp))
    assert again["X-Signature"] != headers["X-Signature"]  # a fresh nonce each time


def test_nonce_shape_is_checked() -> None:
    assert check_nonce("A" * 16) == "A" * 16
    for bad in ("short", "x" * 65, "has space" * 3, "ünïcode" * 4):
        with pytest.raises(Unauthenticated, match="X-Nonce"):
            check_nonce(bad)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/core/v1/customers", b'{"a":1}'),  # method changed
        ("POST", "/core/v1/settings", b'{"a":1}'),  # path changed
        ("POST", "/core/v1/customers?x=1", b'{"a":1}'),  # query added
        ("POST", "/core/v1/customers", b'{"a":2}'),  # body changed
    ],
)
def test_any_change_breaks_the_signature(method: str, path: str, body: bytes) -> None:
    stamp, nonce = str(int(time.time())), "n" * 16
    signature = sign(SECRET, "POST", "/core/v1/customers", stamp, nonce, b'{"a":1}')
    with pytest.raises(Unauthenticated, match="does not verify"):
        check_signature(SECRET, signature, method, path, stamp, nonce, body)
    with pytest.raises(Unauthenticated, match="does not verify"):
        check_signature(SECRET, signature, "POST", "/core/v1/customers", stamp, "m" * 16, b'{"a":1}')


def test_wrong_secret_fails() -> None:
    stamp = str(int(time.time()))
    signature = sign("lns_other", "GET", "/", stamp, "n" * 16, b"")
    with pytest.raises(Unauthenticated):
        check_signature(SECRET, signature, "GET", "/", stamp, "n" * 16, b"")


def test_timestamps_older_than_five_minutes_or_in_the_future_are_refused() -> None:
    now = 1_700_000_000.0
    assert check_timestamp("1700000000", max_age=300, max_skew=30, now=now) == 1_700_000_000
    assert check_timestamp(str(int(now) - 299), max_age=300, max_skew=30, now=now)
    with pytest.raises(Unauthenticated, match="older than 300 s"):
        check_timestamp(str(int(now) - 301), max_age=300, max_skew=30, now=now)
    with pytest.raises(Unauthenticated, match="future"):
        check_timestamp(str(int(now) + 31), max_age=300, max_skew=30, now=now)
    for garbage in ("", "-5", "1.5", "9" * 20, "abc"):
        with pytest.raises(Unauthenticated):
            check_timestamp(garbage, max_age=300, max_skew=30, now=now)
