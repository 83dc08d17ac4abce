"""The buttons of delivered alerts and the presses done on them."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Connection, delete, select

from gexbot.core.alerts.buttons import Action, StoredButton
from gexbot.store.dialect import insert
from gexbot.store.tables import alert_buttons, button_presses


def button_token(
    conn: Connection,
    *,
    outbox_id: int,
    alert_key: str,
    rule_id: str,
    symbol: str,
    fingerprint: str,
    platform: str,
    chat_id: str,
    now: datetime,
) -> str:
    """The token of an outbox row's buttons: made on its first send, the same on a retry."""
    stmt = insert(conn, alert_buttons).values(
        token=secrets.token_urlsafe(16)[:22],
        outbox_id=outbox_id,
        alert_key=alert_key,
        rule_id=rule_id,
        symbol=symbol,
        fingerprint=fingerprint,
        platform=platform,
        chat_id=chat_id,
        created_at=now,
    )
    conn.execute(stmt.on_conflict_do_nothing(index_elements=[alert_buttons.c.outbox_id]))
    token = conn.execute(
        select(alert_buttons.c.token).where(alert_buttons.c.outbox_id == outbox_id)
    ).scalar_one()
    return str(token)


def load_button(conn: Connection, token: str) -> StoredButton | None:
    """What a token is about (None: unknown)."""
    r = conn.execute(select(alert_buttons).where(alert_buttons.c.token == token)).first()
    if r is None:
        return None
    return StoredButton(
        token=r.token,
        alert_key=r.alert_key,
        rule_id=r.rule_id,
        symbol=r.symbol,
        fingerprint=r.fingerprint,
        platform=r.platform,
        chat_id=r.chat_id,
        created_at=r.created_at,
    )


def claim_press(
    conn: Connection, token: str, action: Action, *, by: str, result: str, now: datetime
) -> tuple[bool, str]:
    """Record a press; (True, result) for the first of its kind, else (False, what the first
    one did): a double press, two people at once, or a replayed delivery acts once."""
    stmt = insert(conn, button_presses).values(
        token=token, action=action.value, pressed_by=by, result=result, pressed_at=now
    )
    done = conn.execute(
        stmt.on_conflict_do_nothing(
            index_elements=[button_presses.c.token, button_presses.c.action]
        ).returning(button_presses.c.token)
    ).first()
    if done is not None:
        return True, result
    first = conn.execute(
        select(button_presses.c.result).where(
            button_presses.c.token == token, button_presses.c.action == action.value
        )
    ).scalar_one()
    return False, str(first)


def prune_buttons(conn: Connection, *, before: datetime) -> int:
    """Forget buttons (and their presses) older than `before`: they answer as unknown."""
    old = select(alert_buttons.c.token).where(alert_buttons.c.created_at < before)
    conn.execute(delete(button_presses).where(button_presses.c.token.in_(old)))
    return (
        conn.execute(delete(alert_buttons).where(alert_buttons.c.created_at < before)).rowcount or 0
    )
