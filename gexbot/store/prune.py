"""Retention: delete what is older than `GEXBOT_RETENTION_DAYS` (dead messages stay)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from gexbot.core.alerts.buttons import MAX_AGE
from gexbot.store.buttons import prune_buttons
from gexbot.store.ops import prune_handled
from gexbot.store.outbox import prune_sent
from gexbot.store.snapshots import prune_history


@dataclass(frozen=True, slots=True)
class Pruned:
    """Rows deleted per table."""

    sent: int
    history: int


def prune(engine: Engine, *, now: datetime, retention_days: float) -> Pruned:
    """Delete sent messages and snapshot history older than the retention."""
    before = now - timedelta(days=retention_days)
    with engine.begin() as conn:
        prune_handled(conn, before=now - timedelta(days=1))  # only redeliveries need them
        # A button answers "no longer current" after 7 days; a day later it is forgotten.
        prune_buttons(conn, before=now - MAX_AGE - timedelta(days=1))
        return Pruned(
            sent=prune_sent(conn, before=before),
            history=prune_history(conn, before=before),
        )
