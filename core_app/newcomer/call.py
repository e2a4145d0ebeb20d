"""`core call METHOD PATH [JSON]`: one signed REST request, printed.

Credentials: CORE_API_KEY / CORE_API_SECRET from the environment or `.env`. Outside production, when
there are none (or they belong to another merchant than the request's `merchant_id`), a key with
`admin:full` is created for that merchant (audited, like `core apikey create`) and written to `.env`.
The base URL is CORE_URL, or http://127.0.0.1:HTTP_PORT.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from dotenv import dotenv_values, set_key

from core_app.security.principal import FULL, normalise_merchant
from core_app.security.signing import signed_headers
from core_app.settings import Settings, load_settings

ENV_FILE = Path(".env")
KEY_VARS = ("CORE_API_KEY", "CORE_API_SECRET", "CORE_API_MERCHANT")


class CallError(Exception):
    """Said on one line, exit code 2."""


def request_merchant(path: str, body: Any) -> str | None:
    """The merchant a request acts on: `merchant_id` in the query, else in the JSON body."""
    values = parse_qs(urlsplit(path).query).get("merchant_id")
    raw = values[0] if values else (body.get("merchant_id") if isinstance(body, dict) else None)
    return normalise_merchant(raw) if raw is not None else None


def credentials(settings: Settings, merchant: str | None, env_file: Path = ENV_FILE) -> tuple[str, str]:
    stored = {**dotenv_values(env_file), **{k: os.environ[k] for k in KEY_VARS if k in os.environ}}
    key, secret = stored.get("CORE_API_KEY"), stored.get("CORE_API_SECRET")
    stale = merchant is not None and stored.get("CORE_API_MERCHANT") not in (None, merchant)
    if key and secret and not stale:
        return key, secret
    if settings.core_env == "production":
        raise CallError("set CORE_API_KEY and CORE_API_SECRET (core apikey create <merchant> ...)")
    if merchant is None:
        raise CallError("no CORE_API_KEY yet: give the request a merchant_id to create a development key")
    from core_app.security.cli import create_api_key

    key, secret = create_api_key(settings, merchant, [FULL], "cli:core-call", "core call (development)")
    env_file.touch(exist_ok=True)
    for name, value in zip(KEY_VARS, (key, secret, merchant), strict=True):
        set_key(str(env_file), name, value)
    print(
        f"core call: created development API key {key} for {merchant} (saved in {env_file})", file=sys.stderr
    )
    return key, secret


def send(base_url: str, method: str, path: str, body: bytes, key: str, secret: str) -> tuple[int, bytes]:
    """The request exactly as signed: the path and query go on the wire as given."""
    headers = signed_headers(key, secret, method, path, body)
    if body:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base_url + path, data=body or None, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def run_call(args: argparse.Namespace) -> int:
    settings = load_settings()
    method = args.method.upper()
    if not args.path.startswith("/"):
        print("core call: PATH must start with / (e.g. /core/v1/customers?merchant_id=...)", file=sys.stderr)
        return 2
    try:
        body_doc = json.loads(args.json) if args.json else None
    except ValueError as exc:
        print(f"core call: the JSON body does not parse: {exc}", file=sys.stderr)
        return 2
    body = json.dumps(body_doc).encode() if body_doc is not None else b""
    try:
        key, secret = credentials(settings, request_merchant(args.path, body_doc))
    except CallError as exc:
        print(f"core call: {exc}", file=sys.stderr)
        return 2
    base = os.environ.get("CORE_URL") or f"http://127.0.0.1:{settings.http_port}"
    try:
        status, answer = send(base.rstrip("/"), method, args.path, body, key, secret)
    except OSError as exc:
        print(f"core call: {base} does not answer: {exc}", file=sys.stderr)
        return 2
    print(f"HTTP {status}", file=sys.stderr)
    try:
        print(json.dumps(json.loads(answer), indent=2, ensure_ascii=False))
    except ValueError:
        sys.stdout.write(answer.decode(errors="replace"))
    return 0 if 200 <= status < 300 else 1
