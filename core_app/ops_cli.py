"""Operator commands for the event pipeline, each audited.

core repair --merchant M [--timeout 60]   merge customers split across partitions (D102)
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
from typing import Any

from core_app.security.cli import _audit, _merchant
from core_app.settings import load_settings


def _actor(args: argparse.Namespace) -> str:
    return f"cli:{args.actor or getpass.getuser()}"


def _repair(args: argparse.Namespace) -> int:
    import redis.asyncio

    from core_app.services.repair import repair_merchant

    settings = load_settings()
    merchant_id = args.merchant

    async def run() -> dict[str, Any]:
        client = redis.asyncio.Redis.from_url(settings.redis_dsn)
        try:
            report = await repair_merchant(settings, client, merchant_id, timeout=args.timeout)
        finally:
            await client.aclose()
        return report.summary()

    summary = asyncio.run(run())
    _audit(
        settings,
        merchant_id,
        _actor(args),
        "customers.repair",
        entity_type="merchant",
        entity_id=merchant_id,
        **{name: value for name, value in summary.items() if name != "merchant_id"},
    )
    print(json.dumps(summary))
    return 1 if summary["unanswered"] else 0


def add_commands(commands: Any) -> None:
    repair = commands.add_parser(
        "repair", help="merge a merchant's customers split across partitions by a foreign partitioner"
    )
    repair.add_argument("--merchant", required=True, type=_merchant)
    repair.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the owners")
    repair.add_argument("--actor", help="who runs it (default: the OS user)")
    repair.set_defaults(run=_repair)
