"""The store's rows the web console shows: a few bounded reads, none of them a full export."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, select

from gexbot.core.alerts.events import is_warning
from gexbot.core.alerts.states import AlertState
from gexbot.core.present.console_view import (
    ChatAlerts,
    DeliveryRow,
    MuteRow,
    StateRow,
    StoreRows,
    delivery_what,
)
from gexbot.store.ops import active_mutes
from gexbot.store.outbox import OutboxState, counts
from gexbot.store.tables import alert_state, outbox, personal_alerts

MAX_FIRING = 200
RECENT = 25
DEAD_SHOWN = 10
CHATS_SHOWN = 50


def console_rows(conn: Connection, *, now: datetime) -> StoreRows:
    """Firing statuses and warnings, the newest deliveries and dead ones, outbox counts,
    active mutes and the chats with the most personal alerts."""
    firing: list[StateRow] = []
    warnings: list[StateRow] = []
    query = (
        select(alert_state.c.rule_id, alert_state.c.symbol, alert_state.c.since)
        .where(alert_state.c.state == AlertState.FIRING.value)
        .order_by(alert_state.c.since.desc())
        .limit(MAX_FIRING)
    )
    for r in conn.execute(query):
        (warnings if is_warning(r.rule_id) else firing).append(
            StateRow(r.rule_id, r.symbol, r.since)
        )
    per_state = counts(conn)
    columns = (
        outbox.c.id,
        outbox.c.created_at,
        outbox.c.channel,
        outbox.c.state,
        outbox.c.attempts,
        outbox.c.payload,
        outbox.c.last_error,
    )
    recent = conn.execute(select(*columns).order_by(outbox.c.id.desc()).limit(RECENT))
    dead = conn.execute(
        select(*columns)
        .where(outbox.c.state == OutboxState.DEAD.value)
        .order_by(outbox.c.id.desc())
        .limit(DEAD_SHOWN)
    )
    live = personal_alerts.c.deleted_at.is_(None)
    chats = conn.execute(
        select(
            personal_alerts.c.platform,
            personal_alerts.c.chat_id,
            func.count(),
            func.sum(case((personal_alerts.c.paused.is_not(None), 1), else_=0)),
        )
        .where(live)
        .group_by(personal_alerts.c.platform, personal_alerts.c.chat_id)
        .order_by(func.count().desc())
        .limit(CHATS_SHOWN)
    )
    return StoreRows(
        firing=tuple(firing),
        warnings=tuple(warnings),
        recent=tuple(_delivery(r) for r in recent),
        dead=tuple(_delivery(r) for r in dead),
        waiting=per_state[OutboxState.PENDING] + per_state[OutboxState.SENDING],
        dead_total=per_state[OutboxState.DEAD],
        mutes=tuple(
            MuteRow(m.scope.value, m.target, m.until, m.by) for m in active_mutes(conn, now=now)
        ),
        personal=tuple(
            ChatAlerts(f"{p}:{c}", int(n), int(paused or 0)) for p, c, n, paused in chats
        ),
    )


def _delivery(r: Any) -> DeliveryRow:  # a Row of the columns below
    payload = r.payload if isinstance(r.payload, dict) else {}
    return DeliveryRow(
        id=int(r.id),
        created_at=r.created_at,
        channel=str(r.channel),
        state=str(r.state),
        attempts=int(r.attempts),
        what=delivery_what(payload),
        error=r.last_error,
    )
