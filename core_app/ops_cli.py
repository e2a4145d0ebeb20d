"""Operator commands for the event pipeline, each audited.

core repair --merchant M [--timeout 60]   merge customers split across partitions (D102)
core dlq list [--topic T] [--reason R] [--since ISO]   dead letters, one JSON line each (D104)
core dlq show <partition:offset | offset>              reason, headers and the decoded payload
core dlq replay [--reason R] [--topic T] [--since ISO] re-inject through the normal path (idempotent)
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
from datetime import UTC, datetime
from typing import Any

from core_app.security.cli import _audit, _merchant
from core_app.settings import load_settings


def _actor(args: argparse.Namespace) -> str:
    return f"cli:{args.actor or getpass.getuser()}"


def _repair(args: argparse.Namespace) -> int:
    from core_app.redis_client import open_redis
    from core_app.services.repair import repair_merchant

    settings = load_settings()
    merchant_id = args.merchant

    async def run() -> dict[str, Any]:
        client = open_redis(settings)
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


def _since(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {value}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _dlq(args: argparse.Namespace) -> int:
    from core_app.dlq_topic import dead_letter_service
    from core_app.services.dead_letters import Filters

    settings = load_settings()
    service = dead_letter_service(settings)
    filters = Filters(topic=args.topic, reason=args.reason, since=args.since)
    details: dict[str, Any] = {"topic": args.topic, "reason": args.reason, "since": str(args.since or "")}
    code = 0
    if args.action == "list":
        letters = asyncio.run(service.list(filters))
        for letter in letters:
            print(json.dumps(letter.summary()))
        details["listed"] = len(letters)
    elif args.action == "show":
        if args.ref is None:
            raise SystemExit("core dlq show <partition:offset | offset>")
        shown = asyncio.run(show_letters(settings, args.ref))
        for item in shown:
            print(json.dumps(item, indent=2, default=str))
        details |= {"ref": args.ref, "found": len(shown)}
        code = 0 if shown else 1
    else:
        counts = asyncio.run(service.replay(filters, _actor(args)))
        print(json.dumps(counts))
        details |= counts
    _audit(settings, None, _actor(args), f"dlq.{args.action}", entity_type="dead_letters", **details)
    return code


async def show_letters(settings: Any, ref: str) -> list[dict[str, Any]]:
    from core_app.dlq_topic import dead_letter_service
    from core_app.events.codec import DecodeError, EventCodec

    codec = EventCodec(settings.schema_registry_url, settings.avro_dir)
    shown = []
    for letter in await dead_letter_service(settings).find(ref):
        item = letter.summary() | {
            "headers": {name: value.decode(errors="replace") for name, value in letter.headers}
        }
        try:
            item["payload"] = await codec.decode(letter.value)
        except DecodeError as exc:
            item["payload_error"] = f"{exc.kind}: {exc.reason}"
            item["value_hex"] = (letter.value or b"").hex()[:2000]
        shown.append(item)
    return shown


def add_commands(commands: Any) -> None:
    dlq = commands.add_parser("dlq", help="list, show and replay dead letters (core.dlq); audited")
    dlq.add_argument("action", choices=["list", "show", "replay"])
    dlq.add_argument("ref", nargs="?", help="show: partition:offset (or an offset, for every partition)")
    dlq.add_argument("--topic", help="the source topic (rfm.updated, ...)")
    dlq.add_argument("--reason", help="the error kind (unknown_schema, invalid, unknown_customer, ...)")
    dlq.add_argument("--since", type=_since, help="ISO-8601 time; letters written since then")
    dlq.add_argument("--actor", help="who runs it (default: the OS user)")
    dlq.set_defaults(run=_dlq)

    repair = commands.add_parser(
        "repair", help="merge a merchant's customers split across partitions by a foreign partitioner"
    )
    repair.add_argument("--merchant", required=True, type=_merchant)
    repair.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the owners")
    repair.add_argument("--actor", help="who runs it (default: the OS user)")
    repair.set_defaults(run=_repair)
