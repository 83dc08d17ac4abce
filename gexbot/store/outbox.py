"""The durable outbox: one row per destination, claimed with a lease, marked when done.

Delivery is at-least-once per destination. A crash between a successful send and its mark
leaves the row `sending`; when the lease expires it is sent again (the only duplicate window).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, and_, delete, func, or_, select, update

from gexbot.core.alerts.events import AlertEvent
from gexbot.store.dialect import execute_rows, insert
from gexbot.store.tables import outbox

MAX_ERROR_CHARS = 500


class OutboxState(StrEnum):
    """Where a message stands."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A claimed message, its payload parsed once at the claim."""

    id: int
    alert_key: str
    seq: int
    channel: str
    event: AlertEvent
    attempts: int


def enqueue(
    conn: Connection,
    items: Iterable[tuple[AlertEvent, Sequence[str]]],
    *,
    now: datetime,
) -> int:
    """Insert one row per event and channel; returns how many were actually inserted.

    A row that already exists (same alert key, sequence and channel) is skipped: re-running a
    cycle after a crash enqueues nothing twice.
    """
    rows = [
        {
            "alert_key": event.key,
            "seq": event.seq,
            "channel": channel,
            "payload": event.to_payload(),
            "state": OutboxState.PENDING.value,
            "attempts": 0,
            "due_at": now,
            "created_at": now,
        }
        for event, channels in items
        for channel in dict.fromkeys(channels)
    ]
    return execute_rows(conn, insert(conn, outbox).on_conflict_do_nothing(), outbox, rows)


def _claimable(now: datetime) -> Any:
    return or_(
        and_(outbox.c.state == OutboxState.PENDING.value, outbox.c.due_at <= now),
        and_(outbox.c.state == OutboxState.SENDING.value, outbox.c.lease_until < now),
    )


def claim(
    conn: Connection,
    *,
    now: datetime,
    lease: float,
    limit: int = 50,
    channels: Sequence[str] | None = None,
) -> list[OutboxRow]:
    """Take up to `limit` due rows (and rows whose sending lease expired) for `lease` seconds.

    The UPDATE repeats the claim condition, so two workers racing for a row cannot both get it;
    on PostgreSQL the candidates are also locked with SKIP LOCKED so workers do not queue.
    """
    candidates = select(outbox.c.id).where(_claimable(now)).order_by(outbox.c.due_at, outbox.c.id)
    if channels is not None:
        candidates = candidates.where(outbox.c.channel.in_(list(channels)))
    candidates = candidates.limit(limit)
    if conn.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    stmt = (
        update(outbox)
        .where(outbox.c.id.in_(candidates.scalar_subquery()), _claimable(now))
        .values(
            state=OutboxState.SENDING.value,
            lease_until=now + timedelta(seconds=lease),
            attempts=outbox.c.attempts + 1,
        )
        .returning(
            outbox.c.id,
            outbox.c.alert_key,
            outbox.c.seq,
            outbox.c.channel,
            outbox.c.payload,
            outbox.c.attempts,
        )
    )
    rows: list[OutboxRow] = []
    unreadable: list[tuple[int, int]] = []
    for r in conn.execute(stmt).all():
        try:
            event = AlertEvent.from_payload(r.payload)
        except (KeyError, TypeError, ValueError):
            unreadable.append((r.id, r.attempts))  # a newer or broken version wrote it
            continue
        rows.append(OutboxRow(r.id, r.alert_key, r.seq, r.channel, event, r.attempts))
    for row_id, attempt in unreadable:
        _dead(conn, row_id, attempt, "unreadable payload (written by another gexbot version?)")
    return sorted(rows, key=lambda r: r.id)


def _finish(conn: Connection, row_id: int, attempt: int, **values: Any) -> bool:
    """Apply `values` if the row is still sending under the claim that read it (its attempt
    count is the claim's token: a later claim by another replica raised it); False if not."""
    stmt = (
        update(outbox)
        .where(
            outbox.c.id == row_id,
            outbox.c.state == OutboxState.SENDING.value,
            outbox.c.attempts == attempt,
        )
        .values(**values)
        .returning(outbox.c.id)
    )
    return conn.execute(stmt).first() is not None


def mark_sent(conn: Connection, row: OutboxRow, *, now: datetime, provider_id: str | None) -> bool:
    """The message went out; False if the row was no longer ours (claim lapsed, re-claimed)."""
    return _finish(
        conn,
        row.id,
        row.attempts,
        state=OutboxState.SENT.value,
        sent_at=now,
        lease_until=None,
        provider_message_id=provider_id,
        last_error=None,
    )


def mark_retry(conn: Connection, row: OutboxRow, *, due_at: datetime, error: str) -> bool:
    """Sending failed for now; try again at `due_at` (`error` already redacted). False if the
    row was no longer ours."""
    return _finish(
        conn,
        row.id,
        row.attempts,
        state=OutboxState.PENDING.value,
        due_at=due_at,
        lease_until=None,
        last_error=error[:MAX_ERROR_CHARS],
    )


def mark_dead(conn: Connection, row: OutboxRow, *, error: str) -> bool:
    """Sending cannot succeed (permanent error or attempts exhausted). False if the row was no
    longer ours."""
    return _dead(conn, row.id, row.attempts, error)


def _dead(conn: Connection, row_id: int, attempt: int, error: str) -> bool:
    return _finish(
        conn,
        row_id,
        attempt,
        state=OutboxState.DEAD.value,
        lease_until=None,
        last_error=error[:MAX_ERROR_CHARS],
    )


def release_orphans(conn: Connection) -> int:
    """Return rows left `sending` by a dead process to `pending` at once.

    Only for a database this process owns alone (SQLite); with several replicas the lease
    decides, because another live replica may be sending them.
    """
    stmt = (
        update(outbox)
        .where(outbox.c.state == OutboxState.SENDING.value)
        .values(state=OutboxState.PENDING.value, lease_until=None)
    )
    return conn.execute(stmt).rowcount or 0


def counts(conn: Connection) -> dict[OutboxState, int]:
    """Rows per state (for status and metrics)."""
    stmt = select(outbox.c.state, func.count()).group_by(outbox.c.state)
    found = {OutboxState(state): n for state, n in conn.execute(stmt)}
    return {s: found.get(s, 0) for s in OutboxState}


def prune_sent(conn: Connection, *, before: datetime) -> int:
    """Delete sent rows older than `before` (dead rows stay for inspection)."""
    stmt = delete(outbox).where(outbox.c.state == OutboxState.SENT.value, outbox.c.sent_at < before)
    return conn.execute(stmt).rowcount or 0


#: How far back a follow-up looks for the alert that opened its episode.
THREAD_LOOKBACK = 100


def thread_root(conn: Connection, row: OutboxRow) -> str | None:
    """The platform's id of the message that opened `row`'s episode on the same channel: the
    latest `fired` notification of the same alert sent there before it (None: not sent, or
    sent before message ids were kept). The outbox keeps it, so it survives restarts and
    failovers."""
    found = conn.execute(
        select(outbox.c.provider_message_id, outbox.c.payload)
        .where(
            outbox.c.alert_key == row.alert_key,
            outbox.c.channel == row.channel,
            outbox.c.seq < row.seq,
            outbox.c.state == OutboxState.SENT.value,
        )
        .order_by(outbox.c.seq.desc())
        .limit(THREAD_LOOKBACK)
    )
    for provider_id, payload in found:
        if isinstance(payload, dict) and payload.get("reason") == "fired":
            return str(provider_id) if provider_id else None
    return None
