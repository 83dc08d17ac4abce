"""Alembic environment: uses the engine the app passes in (never a URL from alembic.ini)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from gexbot.store.tables import metadata

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through `gexbot db upgrade` (it passes the engine)")

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    context.run_migrations()
