"""`core dev | worker | sink | migrate | schema-registry`."""

from __future__ import annotations

import argparse
import sys

from core_app.settings import ConfigError, load_settings


def _migrate(_args: argparse.Namespace) -> int:
    from core_app.logs import configure_logging
    from core_app.migrate import migrate

    settings = load_settings()
    configure_logging(settings)
    applied = migrate(settings)
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0


def _worker(_args: argparse.Namespace) -> int:
    from core_app.worker import run_worker

    run_worker(load_settings())
    return 0


def _sink(_args: argparse.Namespace) -> int:
    from core_app.sink_process import run_sink

    run_sink(load_settings())
    return 0


def _keys(args: argparse.Namespace) -> int:
    import os

    from core_app.ops.rotation import run_cli

    return run_cli(load_settings(), args.action, dict(os.environ))


def _dev(args: argparse.Namespace) -> int:
    from core_app.devstack import run_dev

    return run_dev(load_settings(), keep_state=args.keep_state, fake_shopify=args.fake_shopify, tls=args.tls)


def _schema_registry(args: argparse.Namespace) -> int:
    from core_app.logs import configure_logging
    from core_app.schema_registry.run import serve

    settings = load_settings()
    configure_logging(settings)
    serve(settings, host=args.host, port=args.port)
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="core", description="LoyalNest Core")
    commands = root.add_subparsers(dest="command", required=True)
    dev = commands.add_parser("dev", help="run Tansu, a dev schema registry and one worker")
    dev.add_argument(
        "--keep-state",
        action="store_true",
        help="keep RocksDB state (only with an external broker)",
    )
    dev.add_argument(
        "--fake-shopify",
        action="store_true",
        help="also run the fake Shopify on DEV_FAKE_SHOPIFY_PORT (9300) and point the worker at it",
    )
    dev.add_argument(
        "--tls",
        action="store_true",
        help="Kafka over TLS: stunnel in front of Tansu with a fresh dev CA (var/tls/ca.pem)",
    )
    dev.set_defaults(run=_dev)
    commands.add_parser("worker", help="run one worker against configured services").set_defaults(run=_worker)
    commands.add_parser(
        "sink", help="run the PostgreSQL sink alone (workers then run with SINK_IN_WORKER=false)"
    ).set_defaults(run=_sink)
    commands.add_parser("migrate", help="apply database migrations (idempotent)").set_defaults(run=_migrate)
    keys = commands.add_parser("keys", help="rotate KEY_ENCRYPTION_KEY or EMAIL_ENCRYPTION_KEY (stopped set)")
    keys.add_argument("action", choices=["rotate-kek", "rotate-email-key"])
    keys.set_defaults(run=_keys)
    registry = commands.add_parser("schema-registry", help="run the development schema registry")
    registry.add_argument("--host", default="127.0.0.1")
    registry.add_argument("--port", type=int, default=8081)
    registry.set_defaults(run=_schema_registry)
    from core_app.security.cli import add_commands

    add_commands(commands)  # flags, allowlist, apikey, token
    from core_app.newcomer.commands import add_newcomer_commands

    add_newcomer_commands(commands)  # call, demo
    from core_app.ops_cli import add_commands as add_ops_commands

    add_ops_commands(commands)  # repair
    from core_app import merchant_cli

    merchant_cli.add_commands(commands)  # merchant create|list|show
    merchant_cli.add_dev_commands(commands)  # fake-shopify
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        code = args.run(args)
    except ConfigError as exc:
        print(f"core: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
