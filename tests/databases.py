"""A throwaway PostgreSQL schema: one per test or benchmark run, selected through
`search_path`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from gexbot.store.engine import make_engine


@contextmanager
def pg_schema(url: str, prefix: str = "bench") -> Iterator[Engine]:
    """An engine on a fresh schema of `url`, dropped afterwards (DatabaseError when the server
    cannot be reached)."""
    admin = make_engine(url)
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine = make_engine(f"{url}?options=-csearch_path%3D{schema}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
