"""PostgreSQL access: one aiopg pool per process, with the email keys set per connection.

The keys travel in libpq's `options` (as `-c core.email_key=...`), so they never appear in SQL text,
`pg_stat_activity` or the statement log.
"""

from __future__ import annotations

import json
from typing import Any

import aiopg
import psycopg2.extras

from core_app.settings import Settings

INT64_DIGITS = 18  # every integer of at most 18 digits fits in 64 bits


def _jsonb_number(text: str) -> int | float:
    """jsonb prints a large float without an exponent (1e30 -> 1000...0); read such a number back as
    the float it was, not as an integer the tables' JSON codec (64-bit) cannot write."""
    return int(text) if len(text.lstrip("-")) <= INT64_DIGITS else float(text)


# One decoder for every value: json.loads with parse_int builds a new JSONDecoder per call, which
# showed in the owners' first-touch fetch of a re-import (docs/benchmarks.md, imports).
_JSONB_DECODER = json.JSONDecoder(parse_int=_jsonb_number)


def load_jsonb(text: str) -> Any:
    return _JSONB_DECODER.decode(text)


psycopg2.extras.register_default_jsonb(globally=True, loads=load_jsonb)


def _escape_option(value: str) -> str:
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


def connection_options(settings: Settings) -> str:
    enc = _escape_option(settings.email_encryption_key.get_secret_value())
    mac = _escape_option(settings.email_hash_key.get_secret_value())
    return f"-c timezone=UTC -c core.email_key={enc} -c core.email_hash_key={mac}"


async def create_pool(settings: Settings, dsn: str | None = None, **overrides: Any) -> aiopg.Pool:
    """A pool on the primary, or on `dsn` (a read replica) with the same per-connection keys."""
    options: dict[str, Any] = {
        "minsize": 1,
        "maxsize": settings.core_db_pool_max,
        "timeout": 10.0,
        "options": connection_options(settings),
    }
    options.update(overrides)
    return await aiopg.create_pool(dsn or settings.db_dsn, **options)


async def fetch_one(pool: aiopg.Pool, sql: str, params: tuple[Any, ...] = ()) -> dict[str, Any] | None:
    async with (
        pool.acquire() as conn,
        conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur,
    ):
        await cur.execute(sql, params)
        row = await cur.fetchone()
        return dict(row) if row is not None else None
