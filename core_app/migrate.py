"""Schema migrations with yoyo-migrations. Applying twice is a no-op."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from psycopg2 import sql
from yoyo import get_backend, read_migrations

from core_app.settings import Settings

log = logging.getLogger(__name__)


def ensure_database(dsn: str) -> bool:
    """Create the database named in `dsn` if it is missing. Returns True when it was created."""
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    admin_dsn = urlunsplit(parts._replace(path="/postgres"))
    conn = psycopg2.connect(admin_dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone():
                return False
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    finally:
        conn.close()


def pending_migrations(settings: Settings) -> list[str]:
    backend = get_backend(settings.db_dsn)
    migrations = read_migrations(str(settings.migrations_dir))
    return [m.id for m in backend.to_apply(migrations)]


def migrate(settings: Settings) -> list[str]:
    """Apply every pending migration; returns the ids applied (empty when up to date)."""
    if ensure_database(settings.db_dsn):
        log.info("created database", extra={"database": urlsplit(settings.db_dsn).path[1:]})
    backend = get_backend(settings.db_dsn)
    migrations = read_migrations(str(settings.migrations_dir))
    with backend.lock():
        todo = backend.to_apply(migrations)
        backend.apply_migrations(todo)
    applied = [m.id for m in todo]
    log.info("migrations applied", extra={"applied": applied})
    migrate_redis_keys(settings)
    return applied


def migrate_redis_keys(settings: Settings) -> None:
    """Redis keys whose names changed (D180): moved before the new version serves requests."""
    from core_app.redis_client import open_sync_redis
    from core_app.security.gate import migrate_legacy_allowlists

    client = open_sync_redis(settings)
    try:
        moved = migrate_legacy_allowlists(client, settings.redis_key_prefix)
    finally:
        client.close()
    if moved:
        log.info("allow-lists moved to their hash-tagged names", extra={"moved": moved})
