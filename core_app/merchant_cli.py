"""`core merchant create|list|show`: merchants for development and tests, each call audited.

core merchant create --shop x.myshopify.com [--name N]   prints the new merchant as JSON
core merchant list [--status installed|uninstalled]       one JSON array
core merchant show <merchant_id | shop domain>

Production merchants come from the install flow (`GET /shopify/install`); `create` makes one with no
Shopify token, which is what tests, benchmarks and local runs need.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiopg

from core_app.domain.errors import DomainError
from core_app.services import merchants
from core_app.settings import Settings, load_settings

T = TypeVar("T")
# What `ArgumentParser.add_subparsers()` returns (a private class in typeshed's stubs too).
Commands = argparse._SubParsersAction


def _actor(args: argparse.Namespace) -> str:
    return f"cli:{args.actor or getpass.getuser()}"


async def _with_pool(settings: Settings, use: Callable[[aiopg.Pool], Awaitable[T]]) -> T:
    """The CLI needs one connection, not a worker's components: it opens a pool of one."""
    from core_app import db

    pool = await db.create_pool(settings, minsize=1, maxsize=1)
    try:
        return await use(pool)
    finally:
        pool.close()
        await pool.wait_closed()


def create_merchant(settings: Settings, shop: object, name: object, actor: str) -> dict[str, Any]:
    """`core merchant create`: one merchant through the merchant service, audited. The test
    helpers create theirs through this function too (tests/support/events.new_merchant), so no
    test writes the `merchants` table by SQL."""

    async def use(pool: aiopg.Pool) -> dict[str, Any]:
        return await merchants.create_merchant(pool, shop, name, actor)

    return asyncio.run(_with_pool(settings, use))


def run_merchant(args: argparse.Namespace, settings: Settings | None = None) -> int:
    settings = settings or load_settings()
    actor = _actor(args)

    async def use(pool: aiopg.Pool) -> Any:
        if args.action == "list":
            return await merchants.list_merchants(pool, actor, args.status, args.limit)
        return await merchants.show_merchant(pool, args.ref, actor)

    try:
        if args.action == "create":
            result: Any = create_merchant(settings, args.shop, args.name, actor)
        else:
            result = asyncio.run(_with_pool(settings, use))
    except DomainError as exc:
        print(f"core merchant {args.action}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False))
    return 0


def _checked(args: argparse.Namespace) -> int:
    if args.action == "create" and not args.shop:
        raise SystemExit("core merchant create --shop x.myshopify.com [--name N]")
    if args.action == "show" and not args.ref:
        raise SystemExit("core merchant show <merchant_id | shop domain>")
    return run_merchant(args)


def add_commands(commands: Commands) -> None:
    merchant = commands.add_parser("merchant", help="create, list and show merchants (audited)")
    merchant.add_argument("action", choices=["create", "list", "show"])
    merchant.add_argument("ref", nargs="?", help="show: the merchant id or its shop domain")
    merchant.add_argument("--shop", help="create: the shop's permanent domain, x.myshopify.com")
    merchant.add_argument("--name", help="create: a display name")
    merchant.add_argument("--status", choices=["installed", "uninstalled"], help="list: only these")
    merchant.add_argument("--limit", type=int, default=100, help="list: at most this many (1-1000)")
    merchant.add_argument("--actor", help="who is running it (default: the OS user)")
    merchant.set_defaults(run=_checked)


def _fake_shopify(args: argparse.Namespace) -> int:
    from core_app.devtools.fake_shopify.run import run

    return run(load_settings(), args.host, args.port, args.customers)


def add_dev_commands(commands: Commands) -> None:
    fake = commands.add_parser("fake-shopify", help="run the fake Shopify (development and demos)")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=9300)
    fake.add_argument("--customers", type=int, default=5000, help="customers in each fake shop")
    fake.set_defaults(run=_fake_shopify)
