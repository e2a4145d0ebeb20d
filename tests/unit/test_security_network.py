"""Client address: X-Forwarded-For believed only from trusted proxies."""

import pytest

from core_app.security.network import TrustedProxies, normalise_ip


def test_untrusted_peer_is_the_client_whatever_it_claims() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert proxies.client_ip("203.0.113.9", "198.51.100.1") == "203.0.113.9"
    assert TrustedProxies().client_ip("203.0.113.9", "198.51.100.1") == "203.0.113.9"


def test_trusted_proxy_chain_is_read_from_the_right() -> None:
    proxies = TrustedProxies.from_setting("10.0.0.0/8, 192.168.1.0/24")
    # spoofed left-most entry, then the real client, then an inner proxy
    chain = "1.2.3.4, 198.51.100.7, 10.1.2.3"
    assert proxies.client_ip("10.0.0.2", chain) == "198.51.100.7"
    assert proxies.client_ip("10.0.0.2", "10.1.1.1, 10.2.2.2") == "10.1.1.1"
    assert proxies.client_ip("10.0.0.2", "garbage") is None


def test_addresses_are_normalised() -> None:
    assert normalise_ip("::ffff:192.0.2.1") == "192.0.2.1"
    assert normalise_ip("2001:DB8:0:0::1") == "2001:db8::1"
    assert TrustedProxies().client_ip("::ffff:127.0.0.1", None) == "127.0.0.1"
    with pytest.raises(ValueError):
        normalise_ip("not-an-ip")
