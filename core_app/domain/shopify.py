"""Pure Shopify protocol rules: shop domains, OAuth query HMACs, webhook HMACs, scopes, Link cursors.

No I/O here: the services (core_app/services/shopify_*.py) and the fake shop
(core_app/devtools/fake_shopify) both use these, so the two ends agree on one definition.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs, urlencode, urlsplit

from core_app.domain.errors import ValidationFailed

# Shopify's own rule for permanent shop domains; anything else (another host, a port, a path, a
# userinfo part, upper case, a trailing dot) is refused, so no redirect or request leaves Shopify.
SHOP_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*\.myshopify\.com")
MAX_SHOP_LENGTH = 255
DEFAULT_SCOPES = ("read_customers", "write_customers", "read_orders")
# The query parameters Shopify excludes from the signed message.
_UNSIGNED = frozenset({"hmac", "signature"})
_LINK_PART = re.compile(r'<([^>]+)>;\s*rel="?(next|previous)"?')


def parse_shop(value: object, field: str = "shop") -> str:
    """The shop domain, or ValidationFailed naming `field`."""
    if not isinstance(value, str) or not value:
        raise ValidationFailed(field, "is required")
    if len(value) > MAX_SHOP_LENGTH or SHOP_PATTERN.fullmatch(value) is None:
        raise ValidationFailed(field, "must be a permanent domain such as example.myshopify.com")
    return value


def parse_scopes(value: object, field: str = "scopes") -> tuple[str, ...]:
    """Comma-separated scopes (Shopify's form) as a sorted, de-duplicated tuple."""
    if not isinstance(value, str):
        raise ValidationFailed(field, "must be a comma-separated list of scopes")
    scopes = sorted({s.strip() for s in value.split(",") if s.strip()})
    if any(re.fullmatch(r"(unauthenticated_)?(read|write)_[a-z_]+", s) is None for s in scopes):
        raise ValidationFailed(field, "holds a value that is not a Shopify scope")
    return tuple(scopes)


def covers(granted: Iterable[str], wanted: Iterable[str]) -> bool:
    """Whether `granted` holds every wanted scope (write_x implies read_x, as Shopify grants it)."""
    have = set(granted)
    have |= {"read_" + s.removeprefix("write_") for s in have if s.startswith("write_")}
    return set(wanted) <= have


def query_message(params: Mapping[str, str | list[str]]) -> str:
    """The message Shopify signs for OAuth redirects: sorted `k=v` pairs without `hmac`, joined by &.

    A repeated key (`ids[]=1&ids[]=2`) is signed as `ids=["1", "2"]`, as Shopify does."""
    pairs = []
    for key in sorted(k for k in params if k not in _UNSIGNED):
        value = params[key]
        if isinstance(value, list):
            text = value[0] if len(value) == 1 else "[" + ", ".join(f'"{v}"' for v in value) + "]"
        else:
            text = value
        pairs.append(f"{key.removesuffix('[]')}={text}")
    return "&".join(pairs)


def sign_query(secret: str, params: Mapping[str, str | list[str]]) -> str:
    """Hex HMAC-SHA256 of the query message (what Shopify puts in `hmac`)."""
    return hmac.new(secret.encode(), query_message(params).encode(), hashlib.sha256).hexdigest()


def query_params(raw_query: str) -> dict[str, list[str]]:
    return parse_qs(raw_query, keep_blank_values=True, strict_parsing=False)


def verify_query(secret: str, raw_query: str) -> dict[str, str]:
    """The query's single values if its `hmac` is right (constant-time), else ValidationFailed."""
    params = query_params(raw_query)
    given = params.get("hmac", [""])
    if len(given) != 1 or not given[0]:
        raise ValidationFailed("hmac", "is required")
    expected = sign_query(secret, params)
    if not hmac.compare_digest(expected.encode(), given[0].lower().encode()):
        raise ValidationFailed("hmac", "does not match the request")
    return {k: v[-1] for k, v in params.items()}


def sign_body(secret: str, body: bytes) -> str:
    """Base64 HMAC-SHA256 of a raw webhook body (`X-Shopify-Hmac-Sha256`)."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify_body(secret: str, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    return hmac.compare_digest(sign_body(secret, body).encode(), header.strip().encode())


def authorize_url(shop_url: str, client_id: str, scopes: Iterable[str], redirect_uri: str, state: str) -> str:
    """Where the install flow sends the merchant: the shop's OAuth grant screen."""
    query = urlencode(
        {"client_id": client_id, "scope": ",".join(scopes), "redirect_uri": redirect_uri, "state": state}
    )
    return f"{shop_url}/admin/oauth/authorize?{query}"


def next_page_info(link_header: str | None) -> str | None:
    """The `page_info` cursor of the `rel="next"` link of a REST `Link` header, or None."""
    for url, rel in _LINK_PART.findall(link_header or ""):
        if rel == "next":
            return parse_qs(urlsplit(url).query).get("page_info", [None])[0]
    return None


def call_limit(header: str | None) -> tuple[int, int] | None:
    """`X-Shopify-Shop-Api-Call-Limit: 32/40` as (used, capacity)."""
    if not header or "/" not in header:
        return None
    used, _, capacity = header.partition("/")
    try:
        return int(used), int(capacity)
    except ValueError:
        return None
