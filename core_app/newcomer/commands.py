"""Registers `core call` and `core demo`; their modules load only when run."""

from __future__ import annotations

import argparse
from typing import Any

MAX_DEMO_CUSTOMERS = 100_000


def _call(args: argparse.Namespace) -> int:
    from core_app.newcomer.call import run_call

    return run_call(args)


def _demo(args: argparse.Namespace) -> int:
    from core_app.newcomer.demo import run_demo

    return run_demo(args)


def _count(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_DEMO_CUSTOMERS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_DEMO_CUSTOMERS}")
    return int(value)


def add_newcomer_commands(commands: Any) -> None:
    call = commands.add_parser("call", help="send one signed REST request (development key on first use)")
    call.add_argument("method", help="GET, POST, ...")
    call.add_argument("path", help="path and query, e.g. '/core/v1/customers?merchant_id=M&limit=10'")
    call.add_argument("json", nargs="?", help="JSON body")
    call.set_defaults(run=_call)
    demo = commands.add_parser("demo", help="sample customers and realistic events for one merchant")
    demo.add_argument("--merchant", required=True, help="merchant id (it must exist)")
    demo.add_argument("--customers", type=_count, default=1000, metavar="N")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--wait", type=float, default=0, help="seconds to wait for every score in PostgreSQL")
    demo.set_defaults(run=_demo)
