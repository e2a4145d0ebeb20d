"""Import URL checks that need no service: file:// confinement, the size cap, the guarded resolver."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core_app.customer_import.fetch import AddressPolicy, BlockedAddress, GuardedResolver, check_file_url
from core_app.domain.errors import ValidationFailed
from core_app.settings import Settings


def settings_for(root: Path | None, **extra: object) -> Settings:
    return Settings(import_file_root=root, import_max_file_mb=1, **extra)


async def test_file_urls_stay_under_the_import_root(tmp_path: Path) -> None:
    root = tmp_path / "imports"
    root.mkdir()
    (root / "ok.csv").write_text("email\na@b.co\n")
    (tmp_path / "secret.csv").write_text("x")
    os.symlink(tmp_path / "secret.csv", root / "link.csv")
    settings = settings_for(root)
    assert (await check_file_url(f"file://{root}/ok.csv", settings)).path == f"{root}/ok.csv"
    for url, reason in [
        (f"file://{root}/../secret.csv", "import directory"),
        (f"file://{root}/link.csv", "import directory"),  # a symlink out of the root
        (f"file://{root}/missing.csv", "no such file"),
        (f"file://{root}", "not a regular file"),
    ]:
        with pytest.raises(ValidationFailed) as caught:
            await check_file_url(url, settings)
        assert caught.value.field == "file_url" and reason in caught.value.reason
    with pytest.raises(ValidationFailed, match="not enabled"):
        await check_file_url(f"file://{root}/ok.csv", settings_for(None))


async def test_size_cap_is_checked_before_reading(tmp_path: Path) -> None:
    with open(tmp_path / "big.csv", "wb") as big:
        big.truncate(2 * 1024 * 1024)
    with pytest.raises(ValidationFailed, match="larger than 1 MiB"):
        await check_file_url(f"file://{tmp_path}/big.csv", settings_for(tmp_path))


async def test_hosts_resolving_to_private_addresses_are_refused() -> None:
    settings = settings_for(None)
    for url in ("http://localhost:8080/a.csv", "http://127.0.0.1/a.csv", "https://[fd00::1]/a.csv"):
        with pytest.raises(ValidationFailed, match="private"):
            await check_file_url(url, settings)
    opened = settings_for(None, import_allow_private_urls=True)
    assert (await check_file_url("http://127.0.0.1:9/a.csv", opened)).host == "127.0.0.1"


async def test_the_connectors_resolver_refuses_blocked_answers() -> None:
    resolver = GuardedResolver(AddressPolicy(allow_private=False, allowlist=()))
    with pytest.raises(BlockedAddress):
        await resolver.resolve("localhost", 80)
    await resolver.close()
