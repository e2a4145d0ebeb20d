"""Import files, streamed: http(s) with an SSRF guard, and file:// under a configured directory.

Every address an import connects to is checked, not only the one in the request: literal IPs before
each request, names in the connector's resolver (so DNS answers that change after the start-time
check are caught too), and redirects are followed by hand, each hop checked again. A file larger
than IMPORT_MAX_FILE_MB is refused before it is read when its size is known, and cut off when it
grows past the cap while streaming.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from core_app.domain.customer_import import FileUrl, address_allowed, parse_file_url
from core_app.domain.errors import ValidationFailed
from core_app.settings import Settings

CHUNK = 64 * 1024
MAX_REDIRECTS = 5
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class FetchError(Exception):
    """A download failed. `transient` ones are retried (connection errors, 5xx, 429, timeouts)."""

    def __init__(self, reason: str, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class BlockedAddress(OSError):
    """The resolver refused an address (raised inside aiohttp's connector, hence an OSError)."""


@dataclass(frozen=True)
class AddressPolicy:
    allow_private: bool
    allowlist: tuple[Any, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        return cls(settings.import_allow_private_urls, tuple(settings.import_private_networks))

    def allows(self, address: str) -> bool:
        return address_allowed(address, self.allow_private, self.allowlist)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing any answer that holds an address the policy does not allow."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self.inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        for result in results:
            if not self.policy.allows(result["host"]):
                raise BlockedAddress(f"{host} resolves to a private or reserved address")
        return results

    async def close(self) -> None:
        await self.inner.close()


def _literal_ip(host: str) -> str | None:
    import ipaddress

    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


async def check_host(url: FileUrl, policy: AddressPolicy) -> None:
    """Refuse (ValidationFailed on `file_url`) a host that is, or resolves to, a blocked address."""
    assert url.host is not None
    literal = _literal_ip(url.host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                url.host, url.port or 443, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError):
            raise ValidationFailed("file_url", f"the host {url.host} cannot be resolved") from None
        addresses = [info[4][0] for info in infos]
    if not addresses or not all(policy.allows(address) for address in addresses):
        raise ValidationFailed(
            "file_url", "points to a private, loopback, link-local or reserved address, which imports refuse"
        )


def resolve_local_path(url: FileUrl, settings: Settings) -> Path:
    """The file:// path, which must resolve (symlinks included) inside IMPORT_FILE_ROOT."""
    if settings.import_file_root is None:
        raise ValidationFailed("file_url", "file:// imports are not enabled on this service")
    root = Path(os.path.realpath(settings.import_file_root))
    path = Path(os.path.realpath(url.path))
    if path != root and root not in path.parents:
        raise ValidationFailed("file_url", "file:// imports must lie under the configured import directory")
    return path


async def check_file_url(value: Any, settings: Settings) -> FileUrl:
    """What can be checked before the import starts: syntax, address policy, local path and size."""
    url = parse_file_url(value)
    if url.scheme == "file":
        path = resolve_local_path(url, settings)
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
        except OSError:
            raise ValidationFailed("file_url", "no such file") from None
        if not path.is_file():
            raise ValidationFailed("file_url", "is not a regular file")
        if size > settings.import_max_file_bytes:
            raise ValidationFailed("file_url", f"the file is larger than {settings.import_max_file_mb:g} MiB")
    else:
        await check_host(url, AddressPolicy.from_settings(settings))
    return url


class Download:
    """An open source file: an async iterator of byte chunks, with its size when known."""

    def __init__(self, chunks: AsyncIterator[bytes], size: int | None) -> None:
        self.chunks = chunks
        self.size = size


def _capped(chunks: AsyncIterator[bytes], cap: int) -> AsyncIterator[bytes]:
    async def generate() -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in chunks:
            seen += len(chunk)
            if seen > cap:
                raise FetchError(f"the file is larger than {cap / 1024 / 1024:g} MiB", transient=False)
            yield chunk

    return generate()


@asynccontextmanager
async def open_file(url_text: str, settings: Settings) -> AsyncIterator[Download]:
    """Open the import file for streaming. Raises FetchError (transient or not)."""
    try:
        url = parse_file_url(url_text)
    except ValidationFailed as exc:
        raise FetchError(exc.reason, transient=False) from None
    cap = settings.import_max_file_bytes
    if url.scheme == "file":
        async with _open_local(url, settings) as download:
            yield Download(_capped(download.chunks, cap), download.size)
    else:
        async with _open_http(url, settings) as download:
            yield Download(_capped(download.chunks, cap), download.size)


@asynccontextmanager
async def _open_local(url: FileUrl, settings: Settings) -> AsyncIterator[Download]:
    try:
        path = resolve_local_path(url, settings)
        handle = await asyncio.to_thread(open, path, "rb")
    except ValidationFailed as exc:
        raise FetchError(exc.reason, transient=False) from None
    except FileNotFoundError:
        raise FetchError("no such file", transient=False) from None
    except OSError as exc:
        raise FetchError(f"cannot open the file: {exc.strerror}", transient=True) from None

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await asyncio.to_thread(handle.read, 4 * CHUNK):
            yield chunk

    try:
        size = os.fstat(handle.fileno()).st_size
        if size > settings.import_max_file_bytes:
            raise FetchError(f"the file is larger than {settings.import_max_file_mb:g} MiB", transient=False)
        yield Download(chunks(), size)
    finally:
        handle.close()


@asynccontextmanager
async def _open_http(url: FileUrl, settings: Settings) -> AsyncIterator[Download]:
    policy = AddressPolicy.from_settings(settings)
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy), use_dns_cache=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session:
        target = url.url
        for _hop in range(MAX_REDIRECTS + 1):
            hop = parse_file_url(target)
            if hop.scheme == "file":
                raise FetchError("a redirect to a file:// URL is refused", transient=False)
            literal = _literal_ip(hop.host or "")
            if literal is not None and not policy.allows(literal):
                raise FetchError("the URL points to a private or reserved address", transient=False)
            try:
                response = await session.get(target, allow_redirects=False)
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, BlockedAddress):
                    raise FetchError(str(exc.os_error), transient=False) from None
                raise FetchError(f"cannot connect to {hop.host}: {exc.os_error}", transient=True) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise FetchError(f"download error: {type(exc).__name__}: {exc}", transient=True) from None
            if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                target = urljoin(target, response.headers["Location"])
                response.release()
                continue
            break
        else:
            raise FetchError(f"more than {MAX_REDIRECTS} redirects", transient=False)
        try:
            if response.status != 200:
                reason = f"HTTP {response.status} {response.reason or ''}".strip()
                raise FetchError(reason, transient=response.status in RETRYABLE_STATUS)
            size = response.content_length
            if size is not None and size > settings.import_max_file_bytes:
                raise FetchError(
                    f"the file is larger than {settings.import_max_file_mb:g} MiB", transient=False
                )

            async def chunks() -> AsyncIterator[bytes]:
                try:
                    async for chunk in response.content.iter_chunked(CHUNK):
                        yield chunk
                except (aiohttp.ClientError, TimeoutError) as exc:
                    reason = f"download interrupted: {type(exc).__name__}: {exc}"
                    raise FetchError(reason, transient=True) from None

            yield Download(chunks(), size)
        finally:
            response.release()


class FileUrlChecker:
    """The ImportFilePolicy port (core_app/services/ports.py): check_file_url with the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def check(self, file_url: Any) -> FileUrl:
        return await check_file_url(file_url, self.settings)
