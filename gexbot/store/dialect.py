"""Dialect-specific INSERT … ON CONFLICT (the one construct SQLite and PostgreSQL share), and
bulk writes that skip SQLAlchemy's per-row overhead."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

#: Execution options for a read of up to millions of rows: fetched in batches (a server-side
#: cursor on PostgreSQL), so each batch is a statement and memory holds one batch of rows.
STREAMED = {"yield_per": 10_000}
#: Rows per statement of a bulk write (a first cycle over 100,000 alerts writes a status each).
CHUNK = 5_000


def insert(conn: Connection, table: Table) -> Any:
    """An INSERT supporting `on_conflict_do_nothing/do_update` for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database {conn.dialect.name}")


def execute_rows(
    conn: Connection, stmt: Any, table: Table, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Run `stmt` (no RETURNING) once per row, compiled once, rows handed to the driver as is;
    returns the rows it inserted or updated (both drivers sum them over the rows).

    For a thousand rows, SQLAlchemy's per-row, per-value parameter processing is most of the
    cost of `conn.execute(stmt, rows)`. Here each value still goes through its column's own
    bind processor (so it is stored exactly as SQLAlchemy stores it), but once per distinct
    value: a cycle's rows share a handful of timestamps. Every row has the keys of the first;
    keys that are not columns of `table` (a WHERE's bind parameters) are passed unconverted.
    """
    if not rows:
        return 0
    keys = list(rows[0])
    compiled = stmt.compile(dialect=conn.dialect, column_keys=keys)
    order = list(compiled.positiontup or keys)
    processors = []
    for key in order:
        column = table.c.get(key)
        processors.append(
            None
            if column is None
            else column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        )
    done = 0
    # In chunks: a leader's first cycle writes a status per alert (100,000 and more), and the
    # driver's parameters for all of them at once were its peak memory.
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        columns = []
        for key, process in zip(order, processors, strict=True):
            # Column by column: conversion and the final zip run at C speed.
            values = [row[key] for row in chunk]
            columns.append(values if process is None else _converted(process, values))
        tuples = zip(*columns, strict=True)
        params: list[Any] = (
            list(tuples)
            if compiled.positiontup
            else [dict(zip(order, t, strict=True)) for t in tuples]
        )
        done += conn.exec_driver_sql(compiled.string, params).rowcount
    return done


def _converted(process: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    try:
        seen = {v: process(v) for v in set(values)}
    except TypeError:  # unhashable (a JSON value): no reuse
        return [process(v) for v in values]
    return [seen[v] for v in values]
