"""Leadership among replicas sharing one PostgreSQL database: a lease row with a term.

Why a lease row and not an advisory lock: an advisory lock lives as long as its session, and a
frozen host (SIGSTOP, a VM pause) or a half-open network keeps that session alive for the
kernel's keepalive time (two hours by default), so a standby could not take over within two
poll intervals without tuning every server. A lease expires on the database's own clock
whatever happens to its holder, and its `term` is a fencing token: every cycle commits only if
the lease it was started under is still held (`fence`), checked inside the cycle's own
transaction. All times here are the database's (`clock_timestamp()`), so the replicas' clocks
never have to agree.

Beside the lease, the row names the holder's database session (`holder_session`, a backend
pid). When that session is gone, the holder is too: a killed process closes its connections at
once, and a vanished host stops answering the short keepalives its lease connection asks for
(`prepare_lease_session`). A standby may then take over without waiting for the lease to run out.
A frozen or cut-off holder keeps its session (its kernel still answers, or the server has not
given up yet), and is replaced when the lease expires; fencing keeps it harmless either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, column, exists, func, select, table, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from gexbot.store.tables import leadership

POLLER = "poller"
#: Server-side TCP keepalives of a lease connection (seconds idle, between probes, probes): a
#: holder whose host vanished loses its session about 3 s later.
KEEPALIVE = (1, 1, 2)

_sessions = table("pg_stat_activity", column("pid"))


class NotLeader(Exception):
    """The lease this work started under is gone: a standby has (or may have) taken over."""


@dataclass(frozen=True, slots=True)
class Lease:
    """One row of `leadership`, as the database saw it."""

    holder: str
    term: int
    expires_at: datetime
    acquired_at: datetime
    polled_at: datetime | None
    now: datetime  # the database clock when it was read
    holder_session: int | None = None

    @property
    def live(self) -> bool:
        """Whether the lease had not yet expired when read."""
        return self.expires_at > self.now


def _ttl(seconds: float) -> object:
    return func.clock_timestamp() + timedelta(seconds=seconds)


def session_id(conn: Connection) -> int:
    """This connection's database session (its backend pid)."""
    return int(conn.execute(select(func.pg_backend_pid())).scalar_one())


def prepare_lease_session(conn: Connection) -> None:
    """Settings of a lease connection (all settable by any user).

    Short server keepalives, so a vanished host's session ends in seconds, not hours (ignored
    on a Unix socket). A lease transaction is a statement or two, so one left open by a
    replica cut off mid-way is ended after 1 s (not the 5 s of other sessions): it holds the
    lease row's lock. And a statement waits at most 0.5 s for that lock: a standby that
    waited longer would take a lease whose expiry it computed before the wait.
    """
    idle, interval, count = KEEPALIVE
    conn.execute(text(f"SET tcp_keepalives_idle = {idle}"))
    conn.execute(text(f"SET tcp_keepalives_interval = {interval}"))
    conn.execute(text(f"SET tcp_keepalives_count = {count}"))
    conn.execute(text("SET idle_in_transaction_session_timeout = 1000"))
    conn.execute(text("SET lock_timeout = 500"))


def acquire(
    conn: Connection, *, me: str, ttl: float, session: int | None = None, name: str = POLLER
) -> int | None:
    """Take the lease if nobody holds it: it expired, or its holder's session is gone.
    Returns the new term, else None. `session` is the caller's lease connection.

    One statement, so two standbys racing for an expired lease cannot both win: the loser's
    conditional update sees the winner's fresh `expires_at` and changes nothing.
    """
    now = func.clock_timestamp()
    stmt = pg_insert(leadership).values(
        name=name,
        holder=me,
        term=1,
        expires_at=_ttl(ttl),
        acquired_at=now,
        polled_at=None,
        holder_session=session,
    )
    holder_gone = leadership.c.holder_session.is_not(None) & ~exists(
        select(_sessions.c.pid).where(_sessions.c.pid == leadership.c.holder_session)
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=[leadership.c.name],
        set_={
            "holder": me,
            "term": leadership.c.term + 1,
            "expires_at": _ttl(ttl),
            "acquired_at": now,
            "holder_session": session,
        },
        where=(leadership.c.expires_at <= now) | holder_gone,
    ).returning(leadership.c.term)
    row = conn.execute(upsert).first()
    return None if row is None else int(row.term)


def _held(me: str, term: int, name: str) -> object:
    return (
        (leadership.c.name == name)
        & (leadership.c.holder == me)
        & (leadership.c.term == term)
        & (leadership.c.expires_at > func.clock_timestamp())
    )


def renew(
    conn: Connection,
    *,
    me: str,
    term: int,
    ttl: float,
    polling: bool = False,
    session: int | None = None,
    name: str = POLLER,
) -> bool:
    """Extend a lease still held; False when it expired or another term began.

    `polling` also records that the leader is about to ask upstream, so a successor knows which
    refresh window was already served and waits for the next one. `session` names the lease
    connection again (it changes when that connection was re-opened).
    """
    values: dict[str, object] = {"expires_at": _ttl(ttl)}
    if polling:
        values["polled_at"] = func.clock_timestamp()
    if session is not None:
        values["holder_session"] = session
    stmt = (
        update(leadership)
        .where(_held(me, term, name))  # type: ignore[arg-type]
        .values(**values)
        .returning(leadership.c.term)
    )
    return conn.execute(stmt).first() is not None


def fence(conn: Connection, *, me: str, term: int, name: str = POLLER) -> None:
    """Raise NotLeader unless the lease of `term` is still ours, inside `conn`'s transaction.

    Call it last before the commit: it locks the lease row, so a takeover waits for this
    commit, and a takeover that came first makes this transaction roll back.
    """
    stmt = (
        update(leadership)
        .where(_held(me, term, name))  # type: ignore[arg-type]
        .values(term=leadership.c.term)
        .returning(leadership.c.term)
    )
    if conn.execute(stmt).first() is None:
        raise NotLeader(f"lease term {term} of {me} is no longer held")


def release(conn: Connection, *, me: str, term: int, name: str = POLLER) -> bool:
    """Give the lease up at once (graceful stop), so a standby need not wait for its expiry."""
    stmt = (
        update(leadership)
        .where(_held(me, term, name))  # type: ignore[arg-type]
        .values(expires_at=func.clock_timestamp())
        .returning(leadership.c.term)
    )
    return conn.execute(stmt).first() is not None


def current(conn: Connection, *, name: str = POLLER) -> Lease | None:
    """The lease row (live or expired), or None before anyone ever led."""
    stmt = select(
        leadership.c.holder,
        leadership.c.term,
        leadership.c.expires_at,
        leadership.c.acquired_at,
        leadership.c.polled_at,
        func.clock_timestamp().label("now"),
        leadership.c.holder_session,
    ).where(leadership.c.name == name)
    row = conn.execute(stmt).first()
    if row is None:
        return None
    return Lease(
        row.holder,
        int(row.term),
        row.expires_at,
        row.acquired_at,
        row.polled_at,
        row.now,
        None if row.holder_session is None else int(row.holder_session),
    )
