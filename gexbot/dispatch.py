"""The dispatcher: claims due outbox rows, sends them, and marks each outcome."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from gexbot.core.backoff import backoff_delay
from gexbot.store.outbox import OutboxRow, claim, mark_dead, mark_retry, mark_sent

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """Sending failed. `permanent` means retrying cannot help; the message is redacted."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


#: Sends one row and returns the provider's message id (or None).
Sender = Callable[[OutboxRow], Awaitable[str | None]]


@dataclass(slots=True)
class DispatchStats:
    """Outcomes of one dispatch pass."""

    sent: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    """Lease, attempts and backoff for deliveries."""

    lease: float = 60.0
    max_attempts: int = 8
    base_delay: float = 2.0
    max_delay: float = 600.0
    batch: int = 50


async def dispatch_due(
    engine: Engine,
    send: Sender,
    *,
    now: datetime,
    policy: DispatchPolicy | None = None,
    rng: random.Random | None = None,
) -> DispatchStats:
    """Claim due rows, send each, and record sent / retry / dead. Database calls run in a thread."""
    policy = policy or DispatchPolicy()
    rng = rng or random.Random()
    stats = DispatchStats()

    def _claim() -> list[OutboxRow]:
        with engine.begin() as conn:
            return claim(conn, now=now, lease=policy.lease, limit=policy.batch)

    def _mark(fn: Callable[..., bool], row_id: int, **kw: object) -> bool:
        with engine.begin() as conn:
            return fn(conn, row_id, **kw)

    for row in await asyncio.to_thread(_claim):
        if row.attempts > policy.max_attempts:
            error = f"gave up after {policy.max_attempts} attempts"
            await asyncio.to_thread(_mark, mark_dead, row.id, error=error)
            stats.dead.append(row.id)
            continue
        outcome = await _attempt(send, row)
        if not isinstance(outcome, DeliveryError):
            await asyncio.to_thread(_mark, mark_sent, row.id, now=now, provider_id=outcome)
            stats.sent.append(row.id)
            continue
        if outcome.permanent or row.attempts >= policy.max_attempts:
            log.error("delivery to %s failed for good: %s", row.channel, outcome)
            await asyncio.to_thread(_mark, mark_dead, row.id, error=str(outcome))
            stats.dead.append(row.id)
            continue
        delay = outcome.retry_after
        if delay is None:
            delay = backoff_delay(
                row.attempts, base=policy.base_delay, cap=policy.max_delay, rng=rng
            )
        log.warning("delivery to %s failed (%s); retry in %.0fs", row.channel, outcome, delay)
        due = now + timedelta(seconds=delay)
        await asyncio.to_thread(_mark, mark_retry, row.id, due_at=due, error=str(outcome))
        stats.retried.append(row.id)
    return stats


async def _attempt(send: Sender, row: OutboxRow) -> str | DeliveryError | None:
    """Send one row: the provider id, or the error saying what to do next."""
    try:
        return await send(row)
    except DeliveryError as exc:
        return exc
    except Exception as exc:  # a notifier bug must not stop delivery of the other rows
        log.exception("unexpected error delivering to %s", row.channel)
        # Only the type: a foreign message may carry a token.
        return DeliveryError(f"unexpected {type(exc).__name__}")
