"""Engines and migrations: one clear error per database problem, the password masked.

Messages say what is wrong with the database; the composition root (`gexbot.app.open_database`)
prefixes the setting's name, which this layer does not know.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from gexbot.store.errors import DatabaseError, NoSchema

__all__ = ["DatabaseError", "NoSchema"]

log = logging.getLogger(__name__)

#: SQLite waits this long for a lock instead of failing (a second process mid-write).
SQLITE_BUSY_MS = 10_000


def masked(url: str) -> str:
    """The URL with its password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; a power cut loses < 1 transaction
    cur.close()


#: libpq options: give up connecting after 10 s, and notice a dead peer (a cut network, a
#: crashed host) within about 25 s instead of the kernel's two hours.
PG_CONNECT_ARGS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 25_000,
}
#: A transaction left open by a frozen or cut-off replica is ended by the server after this
#: long, so the row locks it holds cannot stall the replicas that took over.
PG_IDLE_IN_TRANSACTION_MS = 5_000


def _pg_session(dbapi_conn: Any, _record: Any) -> None:
    with dbapi_conn.cursor() as cur:
        cur.execute(f"SET idle_in_transaction_session_timeout = {PG_IDLE_IN_TRANSACTION_MS}")
    dbapi_conn.commit()  # a plain SET inside a rolled-back transaction would be undone


def make_engine(url: str, **kw: Any) -> Engine:
    """An engine for `url` (sqlite:///… or postgresql+psycopg://…), checked by connecting."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"not a database URL ({masked(url)})") from None
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, the documented driver
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_MS / 1000}, **kw)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            # Options written in the URL win over these defaults.
            defaults = {k: v for k, v in PG_CONNECT_ARGS.items() if k not in parsed.query}
            engine = create_engine(parsed, pool_pre_ping=True, connect_args=defaults, **kw)
            event.listen(engine, "connect", _pg_session)
    except (NoSuchModuleError, ImportError) as exc:
        hint = " (pip install 'gexbot[postgres]')" if "postgres" in parsed.drivername else ""
        raise DatabaseError(f"no driver for {parsed.drivername}{hint}: {exc}") from None
    try:
        with engine.connect():
            pass
    except (DBAPIError, SQLAlchemyError) as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else ""
        raise DatabaseError(
            f"cannot connect to {masked(url)} ({reason or type(exc).__name__})"
        ) from None
    return engine


def _migrations_dir() -> Path:
    packaged = Path(__file__).resolve().parent.parent / "_migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic's config, built in code so it works from any directory and from a wheel."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_migrations_dir()))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def current_revision(engine: Engine) -> str | None:
    """The database's Alembic revision (None when empty)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


#: pg_advisory_lock key that serialises migrations of replicas started together ("gexb").
MIGRATION_LOCK = 0x67657862


def head_revision() -> str:
    """The newest migration this code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def _revisions(engine: Engine) -> tuple[str, str | None]:
    """(this code's head, the database's revision); refuses a database newer than the code."""
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head() or ""
    current = current_revision(engine)
    if current is not None and current not in {r.revision for r in script.walk_revisions()}:
        raise DatabaseError(
            f"the database is at revision {current}, newer than this "
            f"gexbot (which knows up to {head}); upgrade gexbot rather than migrating down"
        )
    return head, current


def require_current_schema(engine: Engine) -> str:
    """Refuse a database whose schema is not this code's head (replicas never migrate alone:
    one of several starting together would change the schema under the others)."""
    head, current = _revisions(engine)
    if current == head:
        return head
    if current is None:
        raise NoSchema(
            "the database has no gexbot schema yet; run `gexbot db upgrade` once (or start "
            "the bot on SQLite, which migrates its own file)"
        )
    raise DatabaseError(
        f"the database schema is at revision {current}, this gexbot needs {head}; "
        "run `gexbot db upgrade` once (from the new version), then start the replicas"
    )


def migrate(engine: Engine) -> str:
    """Upgrade to the newest revision; refuse a database newer than this code.

    On PostgreSQL an advisory lock makes concurrent upgrades wait for each other.
    """
    if engine.dialect.name != "postgresql":
        return _migrate(engine)
    with engine.connect() as lock:
        lock.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
        lock.commit()
        try:
            return _migrate(engine)
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
            lock.commit()


def _migrate(engine: Engine) -> str:
    head, current = _revisions(engine)
    if current != head:
        log.info("migrating database from %s to %s", current or "empty", head)
        command.upgrade(alembic_config(engine), "head")
    return head
