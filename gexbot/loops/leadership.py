"""Who polls: the one replica holding the lease (PostgreSQL), or the only process (SQLite).

Only the leader polls upstream, evaluates, commits cycles and answers Telegram; every replica
delivers. The leader's belief is bounded twice: by the database (`renew` and `fence` check the
lease row with the database clock) and by a local deadline on the monotonic clock, started
*before* each renewal is sent, so it always ends before the database could let a standby in.
A process frozen by SIGSTOP or cut off from the database therefore stops acting on its own,
and finds a new term in place when it comes back.

Two ways a standby takes over: at once when the leader's lease connection is gone (its process
was killed, or its host vanished and stopped answering keepalives; standbys look every
`STANDBY_CHECK` seconds), or when the lease runs out (a frozen or cut-off leader, whose session
the server still keeps).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from gexbot.loops.health import Metrics
from gexbot.loops.waits import sleep_or_stop
from gexbot.store import leadership as lease_store
from gexbot.store.leadership import NotLeader

log = logging.getLogger(__name__)

#: How often a standby checks whether it may take over (a dead leader's session ends at once).
STANDBY_CHECK = 0.5

__all__ = ["Leadership", "LeaseElector", "NotLeader", "Role", "SoleInstance", "Takeover"]


class Role(StrEnum):
    """What this process does right now."""

    LEADER = "leader"  # polls, evaluates, answers Telegram, delivers
    STANDBY = "standby"  # delivers, answers Slack; takes over when the lease expires


@dataclass(frozen=True, slots=True)
class Takeover:
    """What a new leader learns from the lease row when it takes over."""

    term: int
    previous_poll: datetime | None  # when the last leader last asked upstream (database clock)


class Leadership(Protocol):
    """The role of this process and the checks that keep a stale leader harmless."""

    instance: str

    def is_leader(self) -> bool:
        """Whether this process may poll and commit cycles now."""

    def describe(self) -> dict[str, object]:
        """Role, this instance, the current leader and its term (for /healthz and status)."""

    def fence(self, conn: Connection) -> None:
        """Raise NotLeader unless this process still leads, inside `conn`'s transaction."""

    async def before_poll(self) -> bool:
        """Renew the lease and record the poll; False: do not ask upstream."""

    def take_over(self) -> Takeover | None:
        """The takeover not yet acted on (once per term), if any."""

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the role up to date until `stop`."""

    async def try_lead(self) -> bool:
        """One attempt to lead now (`gexbot once`); False when another process leads."""

    async def release(self) -> None:
        """Give the lease up at once (a clean stop, after the last cycle)."""

    def close(self) -> None:
        """Close the lease connection (after `run` ended, or after `try_lead` and `release`)."""


class SoleInstance:
    """SQLite: the instance lock already guarantees one process; it always leads."""

    def __init__(self, instance: str) -> None:
        self.instance = instance

    def is_leader(self) -> bool:
        """Always."""
        return True

    def describe(self) -> dict[str, object]:
        """Always the leader, of itself."""
        return {"role": Role.LEADER.value, "instance": self.instance, "leader": self.instance}

    def fence(self, conn: Connection) -> None:
        """Nothing to check: no other process can write."""

    async def before_poll(self) -> bool:
        """Always poll."""
        return True

    def take_over(self) -> Takeover | None:
        """Nothing to learn: this process made every previous poll itself or was restarted."""
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Nothing to maintain."""
        await stop.wait()

    async def try_lead(self) -> bool:
        """Always."""
        return True

    async def release(self) -> None:
        """Nothing to give up."""

    def close(self) -> None:
        """Nothing to close."""


class LeaseElector:
    """Leadership through the `leadership` lease row on PostgreSQL (see store/leadership.py)."""

    def __init__(
        self,
        engine: Engine,
        *,
        instance: str,
        ttl: float,
        metrics: Metrics | None = None,
        monotonic: Callable[[], float],
    ) -> None:
        self.instance = instance
        self._engine = engine
        self.ttl = ttl
        self._metrics = metrics
        self._monotonic = monotonic
        self._term: int | None = None
        self._deadline = 0.0
        self._pending: Takeover | None = None
        self._leader: str | None = None  # as last read from the database
        self._leader_term: int | None = None
        self._db_error: str | None = None
        self._was_leader = False
        self._lock = threading.Lock()
        # The lease connection: held open, so its session stands for this process's liveness.
        self._conn: Connection | None = None
        self._session: int | None = None

    # -- the role ---------------------------------------------------------------------------

    def is_leader(self) -> bool:
        """Leader while the term is held and the local deadline has not passed."""
        leading = self._term is not None and self._monotonic() < self._deadline
        with self._lock:  # also called from worker threads (fence): log each change once
            changed = leading != self._was_leader
            self._was_leader = leading
        if changed:
            self._count_change()
            if leading:
                log.info("this replica (%s) is now the leader (term %s)", self.instance, self._term)
            else:
                log.warning(
                    "this replica (%s) stopped leading (term %s): its lease was not renewed in "
                    "time (database slow or unreachable, or this process was paused)",
                    self.instance,
                    self._term,
                )
        return leading

    @property
    def term(self) -> int | None:
        """The term held (it may have lapsed locally; `is_leader` says whether to act)."""
        return self._term

    def describe(self) -> dict[str, object]:
        """Role, instance, leader and term as this replica knows them."""
        leading = self.is_leader()
        # Our own lease lapsed locally: who leads now is unknown until the next check.
        stale = not leading and self._leader == self.instance
        return {
            "role": (Role.LEADER if leading else Role.STANDBY).value,
            "instance": self.instance,
            "leader": self.instance if leading else (None if stale else self._leader),
            "term": self._term if leading else (None if stale else self._leader_term),
            "database_error": self._db_error,
        }

    def _count_change(self) -> None:
        if self._metrics is not None:
            self._metrics.leadership_changes.inc()

    def _step_down(self) -> bool:
        """Forget the term; True if this process was acting as leader until now (counted)."""
        with self._lock:
            was, self._was_leader = self._was_leader, False
        if was:
            self._count_change()
        self._term = None
        self._deadline = 0.0
        self._pending = None
        return was

    def _lose(self, why: str) -> None:
        term = self._term
        if self._step_down():
            log.warning("this replica (%s) stopped leading (term %s): %s", self.instance, term, why)
        elif term is not None:
            log.info("lease term %s of %s is over: %s", term, self.instance, why)

    # -- database steps (run in a worker thread) --------------------------------------------

    def _lease_connection(self) -> tuple[Connection, int]:
        if self._conn is None or self._session is None:
            conn = self._engine.connect()
            conn.detach()  # its own session, truly closed on close (never back to the pool)
            try:
                lease_store.prepare_lease_session(conn)
                session = lease_store.session_id(conn)
                conn.commit()
            except SQLAlchemyError:
                conn.close()
                raise
            self._conn, self._session = conn, session
        return self._conn, self._session

    def close(self) -> None:
        """Close the lease connection; its session ending lets a standby in at once."""
        self._drop_lease_connection()

    def _drop_lease_connection(self) -> None:
        conn, self._conn, self._session = self._conn, None, None
        if conn is not None:
            try:
                conn.close()
            except SQLAlchemyError:
                log.debug("closing a broken lease connection failed", exc_info=True)

    def _tick(self) -> None:
        started = self._monotonic()
        conn, session = self._lease_connection()
        try:
            with conn.begin():
                acquired, now = self._tick_in(conn, session, started)
        except SQLAlchemyError:
            self._drop_lease_connection()  # re-opened (a new session) at the next tick
            raise
        if acquired is not None and now is not None:
            self._term = acquired
            self._deadline = started + self.ttl
            # `acquire` leaves `polled_at` alone: it still says when the last leader polled.
            self._pending = Takeover(acquired, now.polled_at)
        seen = (now.holder, now.term) if now is not None and now.live else (None, None)
        if seen != (self._leader, self._leader_term) and seen[0] not in (None, self.instance):
            log.info("standing by; the leader is %s (term %s)", *seen)
        self._leader, self._leader_term = seen

    def _tick_in(
        self, conn: Connection, session: int, started: float
    ) -> tuple[int | None, lease_store.Lease | None]:
        if self._term is not None:
            if lease_store.renew(
                conn, me=self.instance, term=self._term, ttl=self.ttl, session=session
            ):
                self._deadline = started + self.ttl
            else:
                self._lose("the lease expired or a standby took over")
        acquired = None
        if self._term is None:
            acquired = lease_store.acquire(conn, me=self.instance, ttl=self.ttl, session=session)
        return acquired, lease_store.current(conn)

    def _renew_for_poll(self, term: int) -> bool:
        started = self._monotonic()
        with self._engine.begin() as conn:
            ok = lease_store.renew(conn, me=self.instance, term=term, ttl=self.ttl, polling=True)
        if ok and self._term == term:
            self._deadline = started + self.ttl
        return ok

    # -- what the bot calls -------------------------------------------------------------------

    def fence(self, conn: Connection) -> None:
        """Raise NotLeader unless the lease is still ours (locally and in the database)."""
        term = self._term
        if term is None or not self.is_leader():
            raise NotLeader(f"{self.instance} is not the leader")
        try:
            lease_store.fence(conn, me=self.instance, term=term)
        except NotLeader:
            self._lose("a cycle found its lease gone at commit; the cycle was rolled back")
            raise

    async def before_poll(self) -> bool:
        """Renew and record the poll; True only if the lease is still ours afterwards."""
        term = self._term
        if term is None or not self.is_leader():
            return False
        try:
            ok = await asyncio.to_thread(self._renew_for_poll, term)
        except SQLAlchemyError as exc:
            self._note_db_error(exc)
            return False
        if not ok:
            self._lose("the lease expired before a poll")
            return False
        # The renewal may have hung (a frozen host, a cut network): the deadline decides.
        return self.is_leader()

    def take_over(self) -> Takeover | None:
        """The takeover not yet acted on, once."""
        pending, self._pending = self._pending, None
        return pending if pending is not None and pending.term == self._term else None

    async def run(self, stop: asyncio.Event) -> None:
        """Renew every third of the lease (leader), or look every `STANDBY_CHECK` seconds
        whether the lease expired or its holder's session is gone (standby)."""
        try:
            while not stop.is_set():
                try:
                    await asyncio.to_thread(self._tick)
                    self._db_error = None
                except SQLAlchemyError as exc:
                    self._note_db_error(exc)
                leading = self.is_leader()
                await sleep_or_stop(stop, self.ttl / 3 if leading else STANDBY_CHECK)
        finally:
            await asyncio.to_thread(self._drop_lease_connection)

    async def try_lead(self) -> bool:
        """One lease check; True when this process leads afterwards."""
        await asyncio.to_thread(self._tick)
        self._pending = None  # a one-shot run polls at once
        return self.is_leader()

    def _note_db_error(self, exc: Exception) -> None:
        first = self._db_error is None
        self._db_error = type(exc).__name__
        (log.warning if first else log.debug)(
            "lease check failed (%s); leadership lapses on its own if this lasts",
            type(exc).__name__,
        )

    async def release(self) -> None:
        """On a clean stop, hand the lease over at once instead of letting it expire."""
        term = self._term
        if term is None:
            return

        def _do() -> None:
            with self._engine.begin() as conn:
                lease_store.release(conn, me=self.instance, term=term)

        try:
            await asyncio.wait_for(asyncio.to_thread(_do), timeout=5.0)
        except (SQLAlchemyError, TimeoutError) as exc:  # the lease then simply expires
            log.warning("could not release the lease (%s)", type(exc).__name__)
        else:
            log.info("lease released: a standby may take over at once")
        self._step_down()
