"""Where an import may read its file from: URL syntax and the address policy (SSRF)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from core_app.domain.errors import ValidationFailed

URL_SCHEMES = ("http", "https", "file")
MAX_URL_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class FileUrl:
    url: str
    scheme: str
    host: str | None  # http(s) only
    port: int | None
    path: str  # file:// only: the absolute path

    @property
    def public(self) -> str:
        """The URL without query string, fragment or credentials (signed URLs carry secrets there)."""
        parts = urlsplit(self.url)
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
        return f"{parts.scheme}://{netloc}{parts.path}"


def parse_file_url(value: Any) -> FileUrl:
    """Syntax only: scheme http, https or file; a host for http(s); an absolute path for file://."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed("file_url", "is required")
    url = value.strip()
    if len(url) > MAX_URL_LENGTH or not url.isprintable():
        raise ValidationFailed("file_url", f"must be a printable URL of at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationFailed("file_url", "is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        raise ValidationFailed("file_url", "must be an http://, https:// or file:// URL")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValidationFailed("file_url", "a file:// URL must name an absolute local path")
        return FileUrl(url, scheme, None, None, unquote(parts.path))
    if not parts.hostname:
        raise ValidationFailed("file_url", "must name a host")
    return FileUrl(url, scheme, parts.hostname, port, parts.path)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_allowed(address: str, allow_private: bool, allowlist: Iterable[Network] = ()) -> bool:
    """True if an import may connect to `address`: a public unicast address, or one allowed by
    configuration. Private, loopback, link-local (cloud metadata), multicast, reserved and
    unspecified addresses are refused by default, IPv4-mapped IPv6 included."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in allowlist if network.version == ip.version):
        return True
    if allow_private:
        return not (ip.is_multicast or ip.is_unspecified)
    return ip.is_global and not ip.is_multicast
