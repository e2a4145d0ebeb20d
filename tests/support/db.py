"""PostgreSQL connections for assertions: the tests read what the service wrote."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2

from core_app import db
from core_app.settings import Settings


@contextmanager
def pg(settings: Settings, with_keys: bool = True) -> Iterator[psycopg2.extensions.connection]:
    """An autocommit connection, with the email keys set as the service's own unless told not to.

    (psycopg2's own `with conn` would open a transaction.)
    """
    options = db.connection_options(settings) if with_keys else "-c timezone=UTC"
    conn = psycopg2.connect(settings.db_dsn, options=options)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()
