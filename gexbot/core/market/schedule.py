"""When to poll next: on a deadline, just after upstream's next expected refresh.

BackQuant rewrites its cache every ~30 s and stamps it `computed_at`; polling between two
writes returns the same data. Learning the refresh period and phase from `computed_at` lets
the poller ask shortly after each write, so data is evaluated young at the same request budget
as a fixed interval.

A gap between two stamps is a whole number of refresh periods, and polling may skip writes, so
a gap alone proves nothing about the period. A period longer than the poll interval would slow
polling below its budget for as long as it is believed (a new leader that learnt "one refresh
per outage" polled once per outage for as long as it ran), so such a gap is trusted only when it
was measured soundly: the first poll that saw the new stamp was answered within half the gap of
the last poll asked that still saw the old one. With k writes in the gap, those two polls are
more than (k−1)/k of it apart, so within half of it k is 1. Gaps no longer than the interval are
always harmless: they are multiples of the true period, so polling on them still lands just
after a write and never faster than the interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import median

#: How long after the expected write to ask (upstream writes all symbols within a moment).
DEFAULT_LAG = 1.5
#: How many quick re-asks when the expected write has not happened yet.
MAX_EARLY_RETRIES = 2
#: How many gaps the model remembers, and how many soundly measured periods.
MEMORY = 12
PROVEN_MEMORY = 4
#: A later gap within this fraction of a proven period is that period again.
SAME_PERIOD = 0.02


@dataclass(frozen=True, slots=True)
class Gap:
    """Seconds between two consecutive distinct stamps, and whether it is one period for sure."""

    seconds: float
    sound: bool


@dataclass(slots=True)
class RefreshModel:
    """What one term of polling has learnt about upstream's refresh cadence.

    Mutable and owned by the poll loop; a new one starts with every term and every start, so
    nothing learnt across an outage can carry a wrong period into the next term.
    """

    interval: float  # GEXBOT_POLL_INTERVAL: the request budget
    lag: float = DEFAULT_LAG
    last_stamp: datetime | None = None  # the newest computed_at seen
    last_asked: datetime | None = None  # when the last poll that saw `last_stamp` was sent
    gaps: list[Gap] = field(default_factory=list)
    proven: list[float] = field(default_factory=list)  # periods measured soundly, newest last
    early_retries: int = 0

    def observe(
        self,
        computed_at: Sequence[datetime | None],
        *,
        asked_at: datetime,
        answered_at: datetime | None = None,
    ) -> bool:
        """Record a successful poll sent at `asked_at` (and answered at `answered_at`) and the
        `computed_at` values it returned; True when it brought new data."""
        newest = max((c for c in computed_at if c is not None), default=None)
        if newest is None:
            return False
        if self.last_stamp is not None and newest <= self.last_stamp:
            if newest == self.last_stamp:
                self.last_asked = asked_at
            return False
        if self.last_stamp is not None and self.last_asked is not None:
            seconds = (newest - self.last_stamp).total_seconds()
            apart = ((answered_at or asked_at) - self.last_asked).total_seconds()
            gap = Gap(seconds, sound=apart <= seconds / 2)
            self.gaps.append(gap)
            del self.gaps[:-MEMORY]
            if gap.sound:
                self.proven.append(seconds)
                del self.proven[:-PROVEN_MEMORY]
        self.last_stamp = newest
        self.last_asked = asked_at
        return True

    @property
    def period(self) -> float | None:
        """Upstream's refresh period, from the recent gaps that can be trusted (else None):
        those no longer than the interval, and those equal to a period once proven (polling on
        a proven period has no polls close enough together to prove it again)."""
        trusted = [
            g.seconds
            for g in self.gaps
            if g.seconds <= self.interval + 1e-9
            or any(abs(g.seconds - p) <= SAME_PERIOD * p for p in self.proven)
        ]
        if not trusted:
            return None
        # Polling may skip writes: the smallest gaps are single periods.
        return median(sorted(trusted)[: max(1, len(trusted) // 2)])


def next_poll(model: RefreshModel, *, now: datetime, fresh: bool) -> datetime:
    """The deadline of the next poll.

    Without a trusted cadence: `interval` from now. With one: just after the first expected
    write that keeps the average rate at or below one request per `interval` (never faster
    than upstream refreshes). When a poll found no new data where a write was expected, ask
    again after `lag`, at most twice, before falling back to the cadence.
    """
    period = model.period
    last = model.last_stamp
    if period is None or last is None:
        return now + timedelta(seconds=model.interval)
    if fresh:
        model.early_retries = 0
    elif model.early_retries < MAX_EARLY_RETRIES:
        model.early_retries += 1
        return now + timedelta(seconds=_lag(model.lag, period))
    lag = _lag(model.lag, period)
    step = period * max(1, math.ceil(model.interval / period - 1e-9))
    target = last + timedelta(seconds=step + lag)
    if target <= now:
        # Missed writes (a slow cycle, or a late upstream): the next write after now.
        behind = (now - last).total_seconds() - lag
        n = math.floor(behind / period) + 1
        target = last + timedelta(seconds=n * period + lag)
    return target


def first_poll_after_takeover(
    *,
    now: datetime,
    previous_poll: datetime | None,
    last_stamp: datetime | None,
    interval: float,
    lag: float = DEFAULT_LAG,
) -> datetime:
    """When a new leader may first poll: at once, unless its predecessor already asked in the
    current refresh window; then just after the next write (two replicas never spend the
    request budget on the same data).

    The stored `last_stamp` (the last leader's newest `computed_at`) only places the current
    window; `interval` stands in for the period, which the new term has yet to learn. Without
    a known write, a poll in the last `interval` counts as this window's.
    """
    if previous_poll is None:
        return now
    wait = timedelta(seconds=_lag(lag, interval))
    if previous_poll > now:  # the database clock runs ahead of ours: wait that out
        return previous_poll + wait
    if last_stamp is None:
        start = now - timedelta(seconds=interval)
        return previous_poll + timedelta(seconds=interval) if previous_poll > start else now
    behind = max(0.0, (now - last_stamp).total_seconds())
    window = last_stamp + timedelta(seconds=math.floor(behind / interval) * interval)
    if previous_poll < window:
        return now
    return window + timedelta(seconds=interval) + wait


def _lag(lag: float, period: float) -> float:
    # The lag must stay well inside a period, or every other write would be skipped.
    return min(lag, 0.2 * period)
