"""When to poll next: on a deadline, just after upstream's next expected refresh.

BackQuant rewrites its cache every ~30 s and stamps it `computed_at`; polling between two
writes returns the same data. Learning the refresh period and phase from `computed_at` lets
the poller ask shortly after each write, so data is evaluated young at the same request budget
as a fixed interval.
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


@dataclass(slots=True)
class RefreshModel:
    """What has been learnt about upstream's refresh cadence (mutable, owned by the poll loop)."""

    interval: float  # GEXBOT_POLL_INTERVAL: the request budget
    lag: float = DEFAULT_LAG
    stamps: list[datetime] = field(default_factory=list)  # distinct computed_at values seen
    early_retries: int = 0

    def observe(self, computed_at: Sequence[datetime | None]) -> bool:
        """Record the newest `computed_at` of a poll; True when it is new data."""
        newest = max((c for c in computed_at if c is not None), default=None)
        if newest is None or (self.stamps and newest <= self.stamps[-1]):
            return False
        self.stamps.append(newest)
        del self.stamps[:-12]
        return True

    @property
    def period(self) -> float | None:
        """Upstream's refresh period, once two writes have been seen."""
        gaps = [(b - a).total_seconds() for a, b in zip(self.stamps, self.stamps[1:], strict=False)]
        gaps = [g for g in gaps if g > 0]
        if not gaps:
            return None
        # Polling may skip writes: the smallest gaps are single periods.
        smallest = sorted(gaps)[: max(1, len(gaps) // 2)]
        return median(smallest)


def next_poll(model: RefreshModel, *, now: datetime, fresh: bool) -> datetime:
    """The deadline of the next poll.

    Without a learnt cadence: `interval` from now. With one: just after the first expected
    write that keeps the average rate at or below one request per `interval` (never faster
    than upstream refreshes). When a poll found no new data where a write was expected, ask
    again after `lag`, at most twice, before falling back to the cadence.
    """
    period = model.period
    if period is None or not model.stamps:
        return now + timedelta(seconds=model.interval)
    if fresh:
        model.early_retries = 0
    elif model.early_retries < MAX_EARLY_RETRIES:
        model.early_retries += 1
        return now + timedelta(seconds=min(model.lag, 0.2 * period))
    lag = _lag(model, period)
    step = period * max(1, math.ceil(model.interval / period - 1e-9))
    last = model.stamps[-1]
    target = last + timedelta(seconds=step + lag)
    if target <= now:
        # Missed writes (a slow cycle, or a late upstream): the next write after now.
        behind = (now - last).total_seconds() - lag
        n = math.floor(behind / period) + 1
        target = last + timedelta(seconds=n * period + lag)
    return target


def first_poll_after_takeover(
    model: RefreshModel, *, now: datetime, previous_poll: datetime | None
) -> datetime:
    """When a new leader may first poll: at once, unless its predecessor already asked in the
    current refresh window; then just after the next write (two replicas never spend the
    request budget on the same data).

    Without a learnt period, `interval` stands in for it; without a known write, a poll in
    the last `interval` counts as this window's.
    """
    if previous_poll is None:
        return now
    period = model.period or model.interval
    lag = timedelta(seconds=_lag(model, period))
    if previous_poll > now:  # the database clock runs ahead of ours: wait that out
        return previous_poll + lag
    if not model.stamps:
        start = now - timedelta(seconds=period)
        return previous_poll + timedelta(seconds=period) if previous_poll > start else now
    last = model.stamps[-1]
    behind = max(0.0, (now - last).total_seconds())
    window = last + timedelta(seconds=math.floor(behind / period) * period)
    if previous_poll < window:
        return now
    return window + timedelta(seconds=period) + lag


def _lag(model: RefreshModel, period: float) -> float:
    # The lag must stay well inside a period, or every other write would be skipped.
    return min(model.lag, 0.2 * period)
