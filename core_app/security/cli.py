"""`core flags`, `core allowlist`, `core apikey`, `core token`: operator commands, each audited.

core flags set <merchant_id> <flag> on|off        feature flag in Redis (+ audit_logs row)
core flags get <merchant_id>
core allowlist add|remove <merchant_id> <ip>...   ip_whitelist:{merchant_id} (no TTL, + audit)
core allowlist list|clear <merchant_id>
core apikey create <merchant_id> --permission P   prints the key id and its secret, once
core apikey revoke <key_id>
core token mint --merchant M --permission P        HS256 JWT for development (refused in production)
"""

from __future__ import annotations

import argparse
import getpass
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core_app.ops import product_events
from core_app.security.flags import FLAGS, flags_key, set_flag_sync
from core_app.security.gate import allowlist_key
from core_app.security.network import normalise_ip
from core_app.security.principal import GRANTABLE, normalise_merchant
from core_app.settings import Settings, load_settings


def _actor(args: argparse.Namespace) -> str:
    return f"cli:{args.actor or getpass.getuser()}"


def _merchant(value: str) -> str:
    merchant = normalise_merchant(value)
    if merchant is None:
        raise argparse.ArgumentTypeError(f"not a merchant UUID: {value}")
    return merchant


@contextmanager
def _cursor(settings: Settings) -> Iterator[Any]:
    import psycopg2

    from core_app import db

    conn = psycopg2.connect(settings.db_dsn, options=db.connection_options(settings))
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def _redis(settings: Settings) -> Any:
    from core_app.redis_client import open_sync_redis

    return open_sync_redis(settings)


def _audit(settings: Settings, merchant_id: str | None, actor: str, action: str, **details: Any) -> None:
    from core_app.security.audit import write_audit

    entity = details.pop("entity_type", "security")
    entity_id = details.pop("entity_id", merchant_id)
    with _cursor(settings) as cur:
        write_audit(
            cur,
            merchant_id=merchant_id,
            actor=actor,
            action=action,
            entity_type=entity,
            entity_id=entity_id,
            details=details,
        )


def set_flag(settings: Settings, merchant_id: str, flag: str, on: bool, actor: str) -> None:
    """Change a flag in Redis and audit it (what `core flags set` does)."""
    set_flag_sync(_redis(settings), settings.redis_key_prefix, merchant_id, flag, on)
    _audit(
        settings,
        merchant_id,
        actor,
        "feature_flag_toggled",
        entity_type="feature_flag",
        entity_id=flag,
        on=on,
    )
    if product_events.configure(settings):
        product_events.capture("feature_flag_toggled", merchant_id, flag=flag, enabled=on)
        product_events.shutdown()  # a CLI process: send before it exits


def change_allowlist(
    settings: Settings, merchant_id: str, action: str, ips: list[str], actor: str
) -> set[str]:
    """add / remove / clear the merchant's allow-list and audit it; returns the resulting members."""
    client = _redis(settings)
    key = f"{settings.redis_key_prefix}{allowlist_key(merchant_id)}"
    addresses = [normalise_ip(ip) for ip in ips]
    if action == "add":
        client.sadd(key, *addresses)  # no TTL: configuration, never evicted (D181)
    elif action == "remove" and addresses:
        client.srem(key, *addresses)
    elif action == "clear":
        client.delete(key)
    if action != "list":
        _audit(
            settings,
            merchant_id,
            actor,
            f"ip_allowlist_{action}",
            entity_type="ip_allowlist",
            addresses=addresses,
        )
    return {m.decode() for m in client.smembers(key)}


def create_api_key(
    settings: Settings, merchant_id: str, permissions: list[str], actor: str, description: str | None = None
) -> tuple[str, str]:
    from core_app.security.api_keys import new_api_key
    from core_app.security.crypto import kek_from_setting

    kek = kek_from_setting(settings.key_encryption_key.get_secret_value())
    with _cursor(settings) as cur:
        key_id, secret = new_api_key(cur, kek, merchant_id, permissions, description)
    _audit(
        settings,
        merchant_id,
        actor,
        "api_key_created",
        entity_type="api_key",
        entity_id=key_id,
        permissions=permissions,
    )
    return key_id, secret


def mint_token(
    settings: Settings,
    merchant_id: str | None,
    permissions: list[str],
    *,
    subject: str = "dev-user",
    ttl: int = 3600,
    cross_merchant: bool = False,
) -> str:
    """An HS256 token with the configured secret (development and tests)."""
    import jwt

    if settings.core_env == "production":
        raise SystemExit("core token mint is for development; production tokens come from Auth")
    if settings.jwt_hs256_secret is None or not settings.jwt_hs256_secret.get_secret_value():
        raise SystemExit("JWT_HS256_SECRET is not set")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl,
        "permissions": permissions,
    }
    if merchant_id:
        claims["merchant_id"] = merchant_id
    if cross_merchant:
        claims["cross_merchant"] = True
    return jwt.encode(claims, settings.jwt_hs256_secret.get_secret_value(), algorithm="HS256")


def _flags(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.action == "set":
        set_flag(settings, args.merchant_id, args.flag, args.value == "on", _actor(args))
    values = _redis(settings).hgetall(f"{settings.redis_key_prefix}{flags_key(args.merchant_id)}")
    current = {flag: values.get(flag.encode(), b"on").decode() for flag in FLAGS}
    print(json.dumps({"merchant_id": args.merchant_id, "flags": current}))
    return 0


def _allowlist(args: argparse.Namespace) -> int:
    members = change_allowlist(load_settings(), args.merchant_id, args.action, args.ips, _actor(args))
    print(json.dumps({"merchant_id": args.merchant_id, "ip_whitelist": sorted(members)}))
    return 0


def _apikey(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.action == "create":
        if args.merchant_id is None or not args.permission:
            raise SystemExit("core apikey create <merchant_id> --permission P [--permission P]")
        key_id, secret = create_api_key(
            settings, _merchant(args.merchant_id), args.permission, _actor(args), args.description
        )
        print(json.dumps({"key_id": key_id, "secret": secret, "note": "the secret is shown only once"}))
        return 0
    from core_app.security.api_keys import revoke_api_key

    with _cursor(settings) as cur:
        revoked = revoke_api_key(cur, args.merchant_id)
    if revoked:
        _audit(
            settings, None, _actor(args), "api_key_revoked", entity_type="api_key", entity_id=args.merchant_id
        )
    print(json.dumps({"key_id": args.merchant_id, "revoked": revoked}))
    return 0 if revoked else 1


def _token(args: argparse.Namespace) -> int:
    print(
        mint_token(
            load_settings(),
            args.merchant,
            args.permission,
            subject=args.subject,
            ttl=args.ttl,
            cross_merchant=args.cross_merchant,
        )
    )
    return 0


def add_commands(commands: Any) -> None:
    flags = commands.add_parser("flags", help="per-merchant feature flags (Redis source)")
    flags.add_argument("action", choices=["set", "get"])
    flags.add_argument("merchant_id", type=_merchant)
    flags.add_argument("flag", nargs="?", choices=FLAGS)
    flags.add_argument("value", nargs="?", choices=["on", "off"])
    flags.add_argument("--actor", help="who is changing it (default: the OS user)")
    flags.set_defaults(run=_flags_checked)

    allow = commands.add_parser("allowlist", help="per-merchant IP allow-list (ip_whitelist:{merchant_id})")
    allow.add_argument("action", choices=["add", "remove", "list", "clear"])
    allow.add_argument("merchant_id", type=_merchant)
    allow.add_argument("ips", nargs="*")
    allow.add_argument("--actor")
    allow.set_defaults(run=_allowlist)

    keys = commands.add_parser("apikey", help="API keys for signed REST requests")
    keys.add_argument("action", choices=["create", "revoke"])
    keys.add_argument("merchant_id", metavar="merchant_id|key_id")
    keys.add_argument("--permission", action="append", choices=GRANTABLE)
    keys.add_argument("--description")
    keys.add_argument("--actor")
    keys.set_defaults(run=_apikey)

    token = commands.add_parser("token", help="mint a development JWT (HS256)")
    token.add_argument("action", choices=["mint"])
    token.add_argument("--merchant", type=_merchant)
    token.add_argument("--permission", action="append", choices=GRANTABLE, default=[])
    token.add_argument("--subject", default="dev-user")
    token.add_argument("--ttl", type=int, default=3600)
    token.add_argument("--cross-merchant", action="store_true")
    token.set_defaults(run=_token)


def _flags_checked(args: argparse.Namespace) -> int:
    if args.action == "set" and (args.flag is None or args.value is None):
        raise SystemExit("core flags set <merchant_id> <flag> on|off")
    return _flags(args)
