"""Small operational tables: mutes, subscriptions, cursors and handled chat commands."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, select

from gexbot.core.alerts.audience import Audience, Mute, Scope, Subscription
from gexbot.store.dialect import insert
from gexbot.store.tables import (
    chat_handled,
    cursors,
    mutes,
    subscriptions,
)


def get_cursor(conn: Connection, name: str) -> str | None:
    """A stored cursor (e.g. the Telegram update offset)."""
    return conn.execute(select(cursors.c.value).where(cursors.c.name == name)).scalar()


def set_cursor(conn: Connection, name: str, value: str) -> None:
    """Store a cursor."""
    stmt = insert(conn, cursors).values(name=name, value=value)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[cursors.c.name], set_={"value": stmt.excluded.value}
        )
    )


def add_mute(conn: Connection, mute: Mute, *, by: str | None, now: datetime) -> None:
    """Mute (or extend a mute)."""
    stmt = insert(conn, mutes).values(
        scope=mute.scope, target=mute.target, until=mute.until, created_by=by, created_at=now
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[mutes.c.scope, mutes.c.target],
            set_={"until": stmt.excluded.until, "created_by": stmt.excluded.created_by},
        )
    )


def remove_mute(conn: Connection, scope: str, target: str) -> bool:
    """Unmute; False when there was no such mute."""
    stmt = delete(mutes).where(mutes.c.scope == scope, mutes.c.target == target)
    return bool(conn.execute(stmt).rowcount)


def active_mutes(conn: Connection, *, now: datetime) -> list[Mute]:
    """Mutes still in force (expired ones are simply ignored, then pruned)."""
    stmt = select(mutes).where(mutes.c.until > now).order_by(mutes.c.until)
    return [Mute(Scope(r.scope), r.target, r.until, r.created_by) for r in conn.execute(stmt)]


def list_subscriptions(conn: Connection) -> list[Subscription]:
    """Every subscription."""
    stmt = select(subscriptions).order_by(subscriptions.c.id)
    return [
        Subscription(r.platform, r.chat_id, Scope(r.scope), r.target) for r in conn.execute(stmt)
    ]


def load_audience(conn: Connection, *, now: datetime) -> Audience:
    """The mutes in force and every subscription, for one cycle's decisions."""
    return Audience(tuple(active_mutes(conn, now=now)), tuple(list_subscriptions(conn)))


def subscribe(
    conn: Connection, platform: str, chat_id: str, scope: str, target: str, *, now: datetime
) -> bool:
    """Subscribe a chat; False when it already was."""
    stmt = (
        insert(conn, subscriptions)
        .values(platform=platform, chat_id=chat_id, scope=scope, target=target, created_at=now)
        .on_conflict_do_nothing()
        .returning(subscriptions.c.id)
    )
    return conn.execute(stmt).first() is not None


def unsubscribe(conn: Connection, platform: str, chat_id: str, scope: str, target: str) -> bool:
    """Unsubscribe a chat; False when it was not subscribed."""
    stmt = delete(subscriptions).where(
        subscriptions.c.platform == platform,
        subscriptions.c.chat_id == chat_id,
        subscriptions.c.scope == scope,
        subscriptions.c.target == target,
    )
    return bool(conn.execute(stmt).rowcount)


def claim_command(conn: Connection, key: str, *, by: str, now: datetime) -> bool:
    """Record that `by` handles chat command `key`; False if a replica already does.

    Slack may deliver one command to any of the replicas' Socket Mode connections, and
    redeliver it; the primary key makes exactly one of them answer.
    """
    stmt = (
        insert(conn, chat_handled)
        .values(key=key[:128], handled_at=now, handled_by=by)
        .on_conflict_do_nothing()
        .returning(chat_handled.c.key)
    )
    return conn.execute(stmt).first() is not None


def prune_handled(conn: Connection, *, before: datetime) -> int:
    """Forget handled-command keys older than `before` (Slack redelivers within minutes)."""
    stmt = delete(chat_handled).where(chat_handled.c.handled_at < before)
    return conn.execute(stmt).rowcount or 0
