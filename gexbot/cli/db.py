"""`gexbot db`: migrations and retention."""

from __future__ import annotations

from rich.console import Console

from gexbot.app import utcnow
from gexbot.cli import EXIT_OK
from gexbot.settings import load_settings
from gexbot.store.engine import make_engine, masked, migrate
from gexbot.store.prune import prune


def db(action: str, console: Console) -> int:
    """`gexbot db upgrade|prune`."""
    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        head = migrate(engine)
        if action == "upgrade":
            where = masked(settings.database_url)
            console.print(f"database at revision {head} ({where})", markup=False, highlight=False)
            return EXIT_OK
        done = prune(engine, now=utcnow(), retention_days=settings.retention_days)
    finally:
        engine.dispose()
    console.print(
        f"pruned {done.sent} sent messages and {done.history} snapshots older than "
        f"{settings.retention_days:g} days",
        markup=False,
        highlight=False,
    )
    return EXIT_OK
