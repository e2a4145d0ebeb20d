"""Shopify protocol rules: shop domains, OAuth query HMACs, webhook HMACs, Link cursors, scopes."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core_app.domain.errors import ValidationFailed
from core_app.domain.shopify import (
    authorize_url,
    call_limit,
    covers,
    next_page_info,
    parse_scopes,
    parse_shop,
    sign_body,
    sign_query,
    verify_body,
    verify_query,
)

SECRET = "hush"


def test_the_query_hmac_is_shopifys_documented_example() -> None:
    # shopify.dev "Verify a request": this query and secret sign to this hex digest.
    query = (
        "code=0907a61c0c8d55e99db179b68161bc00&shop=some-shop.myshopify.com"
        "&state=0.6784241404160823&timestamp=1337178173"
    )
    digest = hmac.new(b"hush", query.encode(), hashlib.sha256).hexdigest()
    signed = f"{query}&hmac={digest}"
    assert verify_query(SECRET, signed)["shop"] == "some-shop.myshopify.com"
    # order of the parameters on the wire does not matter, only the sorted message
    shuffled = (
        f"hmac={digest}&timestamp=1337178173&state=0.6784241404160823"
        "&shop=some-shop.myshopify.com&code=0907a61c0c8d55e99db179b68161bc00"
    )
    assert verify_query(SECRET, shuffled)["code"] == "0907a61c0c8d55e99db179b68161bc00"


@pytest.mark.parametrize(
    "query",
    [
        "shop=a.myshopify.com&timestamp=1",
        "shop=a.myshopify.com&timestamp=1&hmac=",
        "shop=a.myshopify.com&hmac=00",
    ],
)
def test_a_missing_or_wrong_query_hmac_is_refused(query: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        verify_query(SECRET, query)
    assert refused.value.field == "hmac"


def test_a_changed_parameter_breaks_the_query_hmac() -> None:
    params = {"shop": "a.myshopify.com", "timestamp": "1700000000"}
    digest = sign_query(SECRET, params)
    with pytest.raises(ValidationFailed):
        verify_query(SECRET, f"shop=b.myshopify.com&timestamp=1700000000&hmac={digest}")


def test_the_webhook_hmac_covers_every_byte_of_the_raw_body() -> None:
    body = b'{"id": 1, "name": "\xd8\xb9"}'
    header = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    assert sign_body(SECRET, body) == header and verify_body(SECRET, body, header)
    for i in range(len(body)):
        changed = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]
        assert not verify_body(SECRET, changed, header)
    assert not verify_body(SECRET, body, None) and not verify_body(SECRET, body, "")


@pytest.mark.parametrize("good", ["a.myshopify.com", "my-shop-1.myshopify.com", "0.myshopify.com"])
def test_permanent_shop_domains_pass(good: str) -> None:
    assert parse_shop(good) == good


@given(st.text(max_size=60))
def test_anything_accepted_as_a_shop_is_a_myshopify_host(value: str) -> None:
    try:
        shop = parse_shop(value)
    except ValidationFailed:
        return
    url = authorize_url(f"https://{shop}", "k", ["read_customers"], "https://app/cb", "s")
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    assert parts.hostname == shop and parts.hostname.endswith(".myshopify.com") and parts.port is None
    assert parts.username is None and parts.path == "/admin/oauth/authorize"


def test_link_header_next_cursor_and_call_limit() -> None:
    base = "https://a.myshopify.com/admin/api/2025-01/customers.json?limit=250"
    link = f'<{base}&page_info=prev1>; rel="previous", <{base}&page_info=nxt2>; rel="next"'
    assert next_page_info(link) == "nxt2"
    assert next_page_info(link.split(", ")[0]) is None and next_page_info(None) is None
    assert call_limit("32/40") == (32, 40) and call_limit("x") is None and call_limit(None) is None


def test_scopes_parse_and_write_implies_read() -> None:
    assert parse_scopes("write_customers, read_orders,read_orders") == ("read_orders", "write_customers")
    assert covers(["write_customers", "read_orders"], ["read_customers", "read_orders"])
    assert not covers(["read_customers"], ["write_customers"])
    with pytest.raises(ValidationFailed):
        parse_scopes("read_customers,drop table")
