"""Dialect-specific INSERT … ON CONFLICT, the one construct SQLite and PostgreSQL share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert(conn: Connection, table: Table) -> Any:
    """An INSERT supporting `on_conflict_do_nothing/do_update` for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database {conn.dialect.name}")
