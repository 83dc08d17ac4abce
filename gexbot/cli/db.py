"""`gexbot db`: migrations and retention."""

from __future__ import annotations

from rich.console import Console

from gexbot.app import Purpose, open_database, utcnow
from gexbot.cli import EXIT_OK
from gexbot.settings import load_settings
from gexbot.store.engine import current_revision, masked
from gexbot.store.prune import prune


def db(action: str, console: Console) -> int:
    """`gexbot db upgrade|prune`."""
    settings = load_settings()
    if action == "upgrade":
        with open_database(settings, Purpose.UPGRADE) as engine:
            head = current_revision(engine)
        where = masked(settings.database_url)
        console.print(f"database at revision {head} ({where})", markup=False, highlight=False)
        return EXIT_OK
    with open_database(settings, Purpose.EDIT) as engine:
        done = prune(engine, now=utcnow(), retention_days=settings.retention_days)
    console.print(
        f"pruned {done.sent} sent messages and {done.history} snapshots older than "
        f"{settings.retention_days:g} days",
        markup=False,
        highlight=False,
    )
    return EXIT_OK
