"""Personal alerts in the database: created and deleted from chat, loaded by the leader.

Rows are marked deleted, never removed, so ids are never reused. Every change takes the next
value of the `personal_alerts` counter as the row's `revision` in the same transaction, so the
leader loads only the rows changed since the counter it last saw.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, select, update

from gexbot.core.personal.grammar import AlertRequest, AlertSyntaxError, PersonalAlert, parse_alert
from gexbot.store.dialect import STREAMED, execute_rows, insert
from gexbot.store.states import forget_rules
from gexbot.store.tables import personal_alerts, revisions

COUNTER = "personal_alerts"


class Created(StrEnum):
    """The outcome of a create."""

    OK = "ok"
    LIMIT = "limit"  # the chat has as many alerts as it may


def _bump(conn: Connection) -> int:
    """The next revision: increments the counter (its row lock orders concurrent writers)."""
    stmt = insert(conn, revisions).values(name=COUNTER, value=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[revisions.c.name], set_={"value": revisions.c.value + 1}
    ).returning(revisions.c.value)
    return int(conn.execute(stmt).scalar_one())


def current_revision(conn: Connection) -> int:
    """The counter as committed (0 before any personal alert was made)."""
    value = conn.execute(select(revisions.c.value).where(revisions.c.name == COUNTER)).scalar()
    return int(value or 0)


def _options(request: AlertRequest) -> dict[str, Any]:
    return {"for": request.hold, "cooldown": request.cooldown, "once": request.once}


def _request(row: Row[Any]) -> AlertRequest:
    """The stored alert parsed back."""
    opts = row.options or {}
    return _parsed(
        row.symbol,
        row.condition,
        float(opts.get("for", 0)),
        float(opts.get("cooldown", 0)),
        bool(opts.get("once")),
    )


@functools.lru_cache(maxsize=65536)  # most alerts repeat a few conditions: parse each once
def _parsed(symbol: str, condition: str, hold: float, cooldown: float, once: bool) -> AlertRequest:
    base = parse_alert(f"{symbol} {condition}", universe=(symbol,))
    return AlertRequest(base.symbol, base.condition, hold=hold, cooldown=cooldown, once=once)


def _alert(row: Row[Any]) -> PersonalAlert:
    return PersonalAlert(
        id=row.id,
        platform=row.platform,
        chat_id=row.chat_id,
        owner=row.owner,
        request=_request(row),
        created_at=row.created_at,
        last_fired=row.last_fired,
        paused=row.paused,
    )


def create_alert(
    conn: Connection,
    *,
    platform: str,
    chat_id: str,
    owner: str,
    request: AlertRequest,
    now: datetime,
    limit: int,
) -> PersonalAlert | Created:
    """Store a new alert for a chat, or Created.LIMIT when the chat already has `limit`."""
    revision = _bump(conn)  # first: it serialises this chat's concurrent creates too
    count = conn.execute(
        select(func.count())
        .select_from(personal_alerts)
        .where(
            personal_alerts.c.platform == platform,
            personal_alerts.c.chat_id == chat_id,
            personal_alerts.c.deleted_at.is_(None),
        )
    ).scalar_one()
    if count >= limit:
        return Created.LIMIT
    owner = owner[:128]
    values = {
        "platform": platform,
        "chat_id": chat_id,
        "owner": owner,
        "symbol": request.symbol,
        "condition": request.condition_text(),
        "options": _options(request),
        "created_at": now,
        "revision": revision,
    }
    new_id = conn.execute(
        personal_alerts.insert().values(**values).returning(personal_alerts.c.id)
    ).scalar_one()
    return PersonalAlert(new_id, platform, chat_id, owner, request, now)


def load_alert(conn: Connection, alert_id: int) -> PersonalAlert | None:
    """One alert not deleted (None: no such alert, or deleted)."""
    row = conn.execute(
        select(personal_alerts).where(
            personal_alerts.c.id == alert_id, personal_alerts.c.deleted_at.is_(None)
        )
    ).first()
    return _alert(row) if row is not None else None


def list_alerts(
    conn: Connection, *, platform: str | None = None, chat_id: str | None = None
) -> list[PersonalAlert]:
    """Alerts not deleted, oldest first; optionally one platform's or one chat's."""
    stmt = select(personal_alerts).where(personal_alerts.c.deleted_at.is_(None))
    if platform is not None:
        stmt = stmt.where(personal_alerts.c.platform == platform)
    if chat_id is not None:
        stmt = stmt.where(personal_alerts.c.chat_id == chat_id)
    return [_alert(r) for r in conn.execute(stmt.order_by(personal_alerts.c.id))]


def delete_alerts(
    conn: Connection,
    ids: Iterable[int],
    *,
    now: datetime,
    platform: str | None = None,
    chat_id: str | None = None,
) -> list[int]:
    """Mark alerts deleted (only the chat's own when a chat is given) and forget their
    states; the ids actually deleted."""
    wanted = list(ids)
    if not wanted:
        return []
    stmt = select(personal_alerts.c.id).where(
        personal_alerts.c.id.in_(wanted), personal_alerts.c.deleted_at.is_(None)
    )
    if platform is not None:
        stmt = stmt.where(personal_alerts.c.platform == platform)
    if chat_id is not None:
        stmt = stmt.where(personal_alerts.c.chat_id == chat_id)
    found = [int(i) for i in conn.execute(stmt).scalars()]
    if not found:
        return []
    revision = _bump(conn)
    conn.execute(
        update(personal_alerts)
        .where(personal_alerts.c.id.in_(found))
        .values(deleted_at=now, revision=revision)
    )
    forget_rules(conn, [f"#{i}" for i in found])
    return found


def chat_alert_ids(conn: Connection, platform: str, chat_id: str) -> list[int]:
    """The ids of a chat's alerts not deleted."""
    stmt = select(personal_alerts.c.id).where(
        personal_alerts.c.platform == platform,
        personal_alerts.c.chat_id == chat_id,
        personal_alerts.c.deleted_at.is_(None),
    )
    return [int(i) for i in conn.execute(stmt.order_by(personal_alerts.c.id)).scalars()]


def pause_chat(conn: Connection, platform: str, chat_id: str, reason: str) -> int:
    """Pause the alerts of a chat that can no longer be reached; how many."""
    ids = chat_alert_ids(conn, platform, chat_id)
    if not ids:
        return 0
    revision = _bump(conn)
    done = conn.execute(
        update(personal_alerts)
        .where(personal_alerts.c.id.in_(ids), personal_alerts.c.paused.is_(None))
        .values(paused=reason[:200], revision=revision)
    )
    return done.rowcount or 0


def resume_chat(conn: Connection, platform: str, chat_id: str) -> int:
    """Resume a paused chat's alerts (it reached the bot again); how many."""
    paused = personal_alerts.c.paused.is_not(None)
    mine = (
        personal_alerts.c.platform == platform,
        personal_alerts.c.chat_id == chat_id,
        personal_alerts.c.deleted_at.is_(None),
    )
    found = conn.execute(select(func.count()).where(*mine, paused)).scalar_one()
    if not found:
        return 0
    revision = _bump(conn)
    conn.execute(
        update(personal_alerts).where(*mine, paused).values(paused=None, revision=revision)
    )
    return int(found)


def mark_fired(conn: Connection, ids: Sequence[int], *, now: datetime) -> None:
    """Record when alerts last fired (no revision: it changes nothing the leader evaluates)."""
    # One statement per id, compiled once: an IN list of a cycle's hundreds of ids is a new
    # statement every cycle.
    stmt = update(personal_alerts).where(personal_alerts.c.id == bindparam("alert_id"))
    execute_rows(conn, stmt, personal_alerts, [{"last_fired": now, "alert_id": i} for i in ids])


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed since a revision: alerts to (re)evaluate, and ids to drop."""

    revision: int
    live: tuple[PersonalAlert, ...]
    gone: tuple[int, ...]  # deleted or paused


def changes_since(conn: Connection, revision: int) -> Changes | None:
    """Alerts changed after `revision`; None when nothing did (one indexed read)."""
    now_at = current_revision(conn)
    if now_at <= revision:
        return None
    live, gone = [], []
    rows = conn.execute(
        select(personal_alerts).where(personal_alerts.c.revision > revision),
        execution_options=STREAMED,  # parsed as they come: a long silence ends the session
    )
    top = now_at
    for row in rows:
        top = max(top, int(row.revision))
        if row.deleted_at is not None or row.paused is not None:
            gone.append(int(row.id))
            continue
        try:
            live.append(_alert(row))
        except AlertSyntaxError:  # written by a newer gexbot with words this one lacks
            gone.append(int(row.id))
    return Changes(top, tuple(live), tuple(gone))


def counts_by_platform(conn: Connection) -> dict[str, int]:
    """Alerts not deleted, per platform (paused ones included)."""
    stmt = (
        select(personal_alerts.c.platform, func.count())
        .where(personal_alerts.c.deleted_at.is_(None))
        .group_by(personal_alerts.c.platform)
    )
    return {str(p): int(n) for p, n in conn.execute(stmt)}
