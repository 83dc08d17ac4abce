"""Alert statuses per rule and symbol: loaded once, written only when they change."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Connection, delete, select

from gexbot.core.alerts.states import AlertState, AlertStatus, NotifyReason, StatusBook, StatusKey
from gexbot.store.dialect import STREAMED, execute_rows, insert
from gexbot.store.tables import alert_state


def load_statuses(conn: Connection) -> StatusBook:
    """Every stored status."""
    out = StatusBook()
    # Streamed: building a million statuses takes seconds, and a session that sends nothing for
    # that long inside its transaction is ended by PostgreSQL (PG_IDLE_IN_TRANSACTION_MS).
    for row in conn.execute(select(alert_state), execution_options=STREAMED):
        out.setdefault(row.rule_id, {})[row.symbol] = AlertStatus(
            state=AlertState(row.state),
            since=row.since,
            baseline=row.baseline,
            last_notified=row.last_notified,
            seq=row.seq,
            last_reason=NotifyReason(row.last_reason) if row.last_reason else None,
        )
    return out


def save_statuses(conn: Connection, changed: Mapping[StatusKey, AlertStatus]) -> int:
    """Upsert the changed statuses in one statement; returns how many."""
    if not changed:
        return 0
    rows = [
        {
            "rule_id": rule_id,
            "symbol": symbol,
            "state": str(st.state),  # a StrEnum's str() is its value, without enum's slow .value
            "since": st.since,
            "baseline": st.baseline,
            "last_notified": st.last_notified,
            "seq": st.seq,
            "last_reason": str(st.last_reason) if st.last_reason else None,
        }
        for (rule_id, symbol), st in changed.items()
    ]
    stmt = insert(conn, alert_state)
    stmt = stmt.on_conflict_do_update(
        index_elements=[alert_state.c.rule_id, alert_state.c.symbol],
        set_={
            c: stmt.excluded[c]
            for c in ("state", "since", "baseline", "last_notified", "seq", "last_reason")
        },
    )
    execute_rows(conn, stmt, alert_state, rows)
    return len(rows)


def forget_rules(conn: Connection, rule_ids: Iterable[str]) -> int:
    """Drop the statuses of rules that were removed or redefined (they start fresh)."""
    ids = list(rule_ids)
    if not ids:
        return 0
    return conn.execute(delete(alert_state).where(alert_state.c.rule_id.in_(ids))).rowcount or 0
