"""The admin page's files and the one exception they make in the security middleware."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import make_mocked_request

from core_app.security.http import PUBLIC_PAGES, is_public
from views.admin_page import ADMIN_DIR, CONTENT_SECURITY_POLICY, PAGES, admin_routes


def test_the_public_pages_are_exactly_the_served_files() -> None:
    assert set(PAGES) == PUBLIC_PAGES
    assert {(method, path) for method, path, _ in admin_routes()} == {
        (method, path) for path in PAGES for method in ("GET", "HEAD")
    }


@pytest.mark.parametrize("path", sorted(PUBLIC_PAGES))
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_reading_a_page_file_is_public(method: str, path: str) -> None:
    assert is_public(make_mocked_request(method, path))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/admin/imports"),
        ("PUT", "/admin/imports.js"),
        ("DELETE", "/admin/imports.css"),
        ("GET", "/admin/imports/"),
        ("GET", "/admin/imports.html"),
        ("GET", "/admin/"),
        ("GET", "/admin/imports/../../core/v1/imports"),
        ("GET", "/core/v1/imports"),
        ("POST", "/graphql"),
    ],
)
def test_nothing_else_becomes_public(method: str, path: str) -> None:
    assert not is_public(make_mocked_request(method, path))


def test_the_page_has_no_inline_script_or_style_and_a_strict_policy() -> None:
    html = (ADMIN_DIR / "imports.html").read_text()
    assert not re.search(r"<script(?![^>]*\ssrc=)", html)
    assert not re.search(r"<style", html)
    assert not re.search(r"\s(style|on[a-z]+)=", html)
    script = (ADMIN_DIR / "imports.js").read_text()
    assert "innerHTML" not in script and "eval(" not in script and "localStorage" not in script
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY
