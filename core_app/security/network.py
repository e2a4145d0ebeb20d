"""The caller's address: the TCP peer, or X-Forwarded-For when the peer is a trusted proxy.

X-Forwarded-For is read from the right: each hop appends the address it saw, so the first address
from the right that is not itself a trusted proxy is the client. Anything left of it was written by
the client and proves nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
CLIENT_IP_CACHE_SIZE = 4096


def parse_ip(value: str | None) -> IPAddress | None:
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value.strip().strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def normalise_ip(value: str) -> str:
    """Canonical text of an address (how allow-list entries are stored and compared)."""
    address = parse_ip(value)
    if address is None:
        raise ValueError(f"not an IP address: {value!r}")
    return address.compressed


class TrustedProxies:
    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip()
        )
        self._seen: dict[tuple[str | None, str | None], str | None] = {}

    @classmethod
    def from_setting(cls, value: str) -> TrustedProxies:
        return cls(value.split(","))

    def trusted(self, address: IPAddress | None) -> bool:
        return address is not None and any(address in net for net in self.networks)

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client's canonical address (cached: a pure function of its inputs, asked per request)."""
        if forwarded_for is not None and len(forwarded_for) > 256:
            return self._client_ip(peer, forwarded_for)  # long client-written chains: not kept
        key = (peer, forwarded_for)
        try:
            return self._seen[key]
        except KeyError:
            pass
        if len(self._seen) >= CLIENT_IP_CACHE_SIZE:
            self._seen.clear()
        found = self._seen[key] = self._client_ip(peer, forwarded_for)
        return found

    def _client_ip(self, peer: str | None, forwarded_for: str | None) -> str | None:
        address = parse_ip(peer)
        if not forwarded_for or not self.trusted(address):
            return address.compressed if address is not None else None
        for hop in reversed(forwarded_for.split(",")):
            hop_address = parse_ip(hop)
            if hop_address is None:
                return None  # a garbled chain names nobody: allow-lists then refuse
            if not self.trusted(hop_address):
                return hop_address.compressed
            address = hop_address
        return address.compressed if address is not None else None
