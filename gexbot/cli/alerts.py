"""`gexbot alerts`: the operator's view of the personal alerts created from chat."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from gexbot.app import Purpose, open_database, utcnow
from gexbot.cli import EXIT_INVALID, EXIT_OK
from gexbot.core.personal.grammar import alert_id_of
from gexbot.core.present.format import fmt_age
from gexbot.settings import load_settings
from gexbot.store.errors import NoSchema
from gexbot.store.personal import delete_alerts, list_alerts


def alerts(
    action: str, target: str | None, chat: str | None, console: Console, err: Console
) -> int:
    """`gexbot alerts [list] [--chat CHAT]` and `gexbot alerts rm ID`."""
    settings = load_settings()
    now = utcnow()
    if action == "rm":
        alert_id = alert_id_of(target or "")
        if alert_id is None:
            err.print(
                f"gexbot alerts rm: “{target or ''}” is not an alert id (e.g. 12 or #12)",
                markup=False,
            )
            return EXIT_INVALID
        with open_database(settings, Purpose.EDIT) as engine, engine.begin() as conn:
            gone = delete_alerts(conn, [alert_id], now=now)
        if not gone:
            err.print(f"no personal alert #{alert_id}", markup=False)
            return EXIT_INVALID
        console.print(f"deleted alert #{alert_id}", markup=False, highlight=False)
        return EXIT_OK
    platform, chat_id = _chat(chat)
    try:
        with open_database(settings, Purpose.READ) as engine, engine.connect() as conn:
            found = list_alerts(conn, platform=platform, chat_id=chat_id)
    except NoSchema:
        found = []  # the bot never ran on this database: nobody made an alert yet
    if not found:
        console.print("no personal alerts" + (f" in {chat}" if chat else ""), markup=False)
        return EXIT_OK
    rows = [
        (
            a.rule_id,
            a.channel,
            a.owner,
            a.request.canonical(),
            "never"
            if a.last_fired is None
            else f"{fmt_age((now - a.last_fired).total_seconds())} ago",
            f"paused: {a.paused}" if a.paused else "active",
        )
        for a in found
    ]
    header = ("id", "chat", "owner", "alert", "last fired", "state")
    if not console.is_terminal:  # piped: one tab-separated line per alert, never wrapped
        for row in (header, *rows):
            console.file.write("\t".join(row) + "\n")  # Rich would expand the tabs
        return EXIT_OK
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"{len(found)} personal alert{'s' if len(found) != 1 else ''}", markup=False)
    return EXIT_OK


def _chat(chat: str | None) -> tuple[str | None, str | None]:
    """`telegram:42` → (telegram, 42); a bare id matches it on any platform."""
    if not chat:
        return None, None
    platform, sep, chat_id = chat.partition(":")
    return (platform, chat_id) if sep else (None, chat)
