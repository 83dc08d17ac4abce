"""The poll schedule (pure): the refresh cadence learnt from `computed_at`, the takeover's first
poll, and the cases that once locked the poller onto a wrong period."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from gexbot.core.market.schedule import RefreshModel, first_poll_after_takeover, next_poll

T0 = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- the model on a driven timeline --------------------------------------------------------------


@dataclass
class Upstream:
    """Writes every `period` seconds from `phase`; a poll sees the last write at or before it."""

    period: float
    phase: float = 0.0

    def stamp(self, t: float) -> datetime:
        return _at(math.floor((t - self.phase) / self.period) * self.period + self.phase)


@dataclass
class Run:
    """Polls (time, data age) of one term of polling."""

    polls: list[tuple[float, float]] = field(default_factory=list)

    def gaps_after(self, t: float) -> list[float]:
        times = [p for p, _ in self.polls if p >= t]
        return [b - a for a, b in itertools.pairwise(times)]


def drive(
    upstream: Upstream,
    interval: float,
    *,
    start: float,
    until: float,
    outages: dict[int, float] | None = None,
    latency: float = 0.05,
) -> Run:
    """Poll from `start` to `until` on `next_poll`; after the poll numbered n in `outages`,
    polls fail (nothing observed) for that many seconds, like a backoff or a Retry-After."""
    model = RefreshModel(interval=interval)
    run = Run()
    t, n = start, 0
    while t < until:
        stamp = upstream.stamp(t)
        fresh = model.observe([stamp], asked_at=_at(t), answered_at=_at(t + latency))
        run.polls.append((t, t - (stamp - T0).total_seconds()))
        if outages and n in outages:
            t += outages[n]
        else:
            t = max(
                t + latency,
                (next_poll(model, now=_at(t + latency), fresh=fresh) - T0).total_seconds(),
            )
        n += 1
    return run


@pytest.mark.parametrize(
    ("case", "period", "interval", "start", "outages", "expected_gap"),
    [
        # A new leader after an outage of N refreshes (its own first poll, then the cadence).
        ("takeover after 12 refreshes", 1.0, 1.0, 12.3, None, 1.0),
        ("takeover after 3 refreshes of 30 s", 30.0, 30.0, 95.0, None, 30.0),
        # A single replica restarted after 15 s of downtime polls as if it had just started.
        ("restart after downtime", 1.0, 1.0, 15.2, None, 1.0),
        # A start-up hiccup delays the second poll by two intervals.
        ("a late second poll", 1.0, 1.0, 0.3, {0: 2.4}, 1.0),
        ("a late second poll, 30 s", 30.0, 30.0, 3.0, {0: 75.0}, 30.0),
        # Backoff after upstream errors, and a long Retry-After.
        ("backoff gaps", 1.0, 1.0, 0.3, {5: 3.7, 9: 6.1}, 1.0),
        ("a Retry-After of 120 s", 30.0, 30.0, 3.0, {4: 120.0}, 30.0),
    ],
)
def test_no_outage_or_late_poll_makes_the_poller_slower_than_its_interval(
    case: str,
    period: float,
    interval: float,
    start: float,
    outages: dict[int, float] | None,
    expected_gap: float,
) -> None:
    upstream = Upstream(period, phase=0.0)
    run = drive(upstream, interval, start=start, until=start + 40 * interval, outages=outages)
    # Past the scripted delays, the poller keeps its cadence: no gap beyond about one interval.
    last_outage = max(outages or {0: 0.0}) + 1
    settled = run.polls[last_outage + 2][0]
    gaps = run.gaps_after(settled)
    assert gaps, case
    assert max(gaps) <= expected_gap * 1.25, f"{case}: gaps {gaps}"
    assert sum(gaps) / len(gaps) >= interval * 0.95, f"{case}: faster than the budget"


@pytest.mark.parametrize(
    ("period", "interval", "phase", "cadence", "max_age"),
    [
        (30.0, 30.0, 7.0, 30.0, 1.6),  # the production default: ask 1.5 s after each write
        (30.0, 10.0, 12.0, 30.0, 1.6),  # a fast budget on a slow upstream: once per write
        (30.0, 60.0, 3.0, 60.0, 1.6),  # a slow budget skips writes evenly
        (2.0, 2.0, 0.5, 2.0, 0.5),  # the demo's fast market: the lag shrinks to 20%
    ],
)
def test_the_intended_cadences_are_still_learnt(
    period: float, interval: float, phase: float, cadence: float, max_age: float
) -> None:
    upstream = Upstream(period, phase)
    run = drive(upstream, interval, start=1.0, until=40 * max(period, interval))
    settled = run.polls[len(run.polls) // 2][0]
    gaps = run.gaps_after(settled)
    assert gaps == pytest.approx([cadence] * len(gaps), abs=0.01)
    ages = [age for t, age in run.polls if t >= settled]
    assert max(ages) <= max_age


def test_a_gap_longer_than_the_interval_is_trusted_only_when_measured_soundly() -> None:
    model = RefreshModel(interval=1.0)
    model.observe([_at(0)], asked_at=_at(0.1))
    model.observe([_at(13)], asked_at=_at(13.2))  # 13 s apart: 13 writes or one? unknowable
    assert model.period is None
    assert next_poll(model, now=_at(13.2), fresh=True) == _at(14.2)  # stays at the interval
    sound = RefreshModel(interval=10.0)
    sound.observe([_at(0)], asked_at=_at(21))  # still the old stamp 21 s after it was written
    sound.observe([_at(30)], asked_at=_at(31), answered_at=_at(31.1))  # 10 s later: new
    assert sound.gaps[-1].sound
    assert sound.period == 30.0


def test_an_intermediate_poll_that_saw_the_old_stamp_makes_a_gap_sound() -> None:
    model = RefreshModel(interval=10.0)
    model.observe([_at(0)], asked_at=_at(1))
    model.observe([_at(0)], asked_at=_at(21))  # the old stamp, 21 s after it was written
    model.observe([_at(30)], asked_at=_at(31))
    assert model.gaps == [model.gaps[0]]
    assert model.gaps[0].sound
    assert model.period == 30.0


def test_unchanged_computed_at_is_not_new_data() -> None:
    model = RefreshModel(interval=30)
    assert model.observe([_at(0), None], asked_at=_at(1)) is True
    assert model.observe([_at(0)], asked_at=_at(2)) is False
    assert model.observe([None], asked_at=_at(3)) is False


def test_without_a_learnt_cadence_polls_every_interval() -> None:
    model = RefreshModel(interval=30)
    assert next_poll(model, now=T0, fresh=True) == T0 + timedelta(seconds=30)


def test_polls_just_after_the_next_expected_refresh() -> None:
    model = RefreshModel(interval=30, lag=1.5)
    for t in (2.0, 32.0, 62.0):
        model.observe([_at(t)], asked_at=_at(t + 1.5))
    assert model.period == pytest.approx(30)
    # Polled at 70 s (data computed at 62 s): the next write is at 92 s, ask at 93.5 s.
    assert next_poll(model, now=_at(70), fresh=True) == _at(93.5)


def test_a_late_write_is_asked_again_twice_then_the_cadence_resumes() -> None:
    model = RefreshModel(interval=30, lag=1.5)
    for t in (0.0, 30.0):
        model.observe([_at(t)], asked_at=_at(t + 1.5))
    assert next_poll(model, now=_at(61.5), fresh=False) == _at(63)
    assert next_poll(model, now=_at(63), fresh=False) == _at(64.5)
    assert next_poll(model, now=_at(64.5), fresh=False) == _at(91.5)


# -- a new leader's first poll --------------------------------------------------------------------


def test_a_new_leader_polls_at_once_unless_this_window_was_polled() -> None:
    now, last = _at(75), _at(60)  # writes every 30 s, the last stored one at T0+60

    def first(previous: datetime | None) -> datetime:
        return first_poll_after_takeover(
            now=now, previous_poll=previous, last_stamp=last, interval=30
        )

    assert first(None) == now
    assert first(_at(58)) == now  # the last leader polled the previous window
    assert first(_at(61.5)) == _at(91.5)  # …or this one: wait for the next write, plus lag


def test_takeover_without_a_known_write_uses_the_interval() -> None:
    now = _at(100)

    def first(previous: datetime) -> datetime:
        return first_poll_after_takeover(
            now=now, previous_poll=previous, last_stamp=None, interval=30
        )

    assert first(_at(90)) == _at(120)
    assert first(T0) == now
    assert first(now + timedelta(seconds=2)) == now + timedelta(seconds=3.5)  # clock ahead
