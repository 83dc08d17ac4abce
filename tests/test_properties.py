"""Hypothesis properties of crossing logic, cooldowns and determinism."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gexbot.core.alerts.states import NotifyReason
from tests.rulekit import Stepper, make_rule

LEVEL = 100.0
spots = st.floats(min_value=90.0, max_value=110.0, allow_nan=False)


def _sides(path: list[float]) -> list[int]:
    return [1 if s > LEVEL else -1 for s in path if s != LEVEL]


@settings(max_examples=300, deadline=None)
@given(path=st.lists(spots, min_size=1, max_size=40))
def test_crosses_fired_equal_side_changes_after_the_first_sight(path: list[float]) -> None:
    s = Stepper(make_rule("crosses"))
    s.run([{"spot": p, "hvl": LEVEL} for p in path])
    sides = _sides(path)
    changes = sum(1 for a, b in itertools.pairwise(sides) if a != b)
    fired = [d for d in s.decisions if d.reason is NotifyReason.FIRED]
    assert len(fired) == changes
    # Each fire reports the direction of the side it moved to.
    for d in fired:
        assert d.observation.direction is not None


@settings(max_examples=200, deadline=None)
@given(
    buffer=st.floats(min_value=0.05, max_value=2.0),
    fractions=st.lists(st.floats(min_value=-0.999, max_value=0.999), min_size=1, max_size=40),
)
def test_a_path_inside_the_dead_band_never_fires(buffer: float, fractions: list[float]) -> None:
    s = Stepper(make_rule("crosses", buffer_pct=buffer))
    s.run([{"spot": LEVEL * (1 + f * buffer / 100), "hvl": LEVEL} for f in fractions])
    assert not s.sent


rule_kinds = st.sampled_from(
    [
        ("crosses", "hvl", {}),
        ("crosses", "hvl", {"buffer_pct": 0.2}),
        ("near", "hvl", {"within_pct": 1.0}),
        ("above", "hvl", {"repeat": 45.0}),
        ("below", "hvl", {"resolve": True}),
        ("moved", "hvl", {"by_pct": 0.5}),
    ]
)
markets = st.lists(
    st.tuples(
        st.floats(min_value=1.0, max_value=120.0),  # seconds since the previous poll
        spots,
        st.one_of(st.none(), st.floats(min_value=95.0, max_value=105.0)),  # the level, or null
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(kind=rule_kinds, cooldown=st.sampled_from([0.0, 60.0, 300.0]), path=markets)
def test_no_two_alerts_closer_than_the_cooldown(
    kind: tuple[str, str, dict[str, Any]], cooldown: float, path: list[tuple[float, float, Any]]
) -> None:
    name, subject, options = kind
    s = Stepper(make_rule(name, subject, cooldown=cooldown, **options))
    for dt, spot, level in path:
        s.step({"spot": spot, "hvl": level}, dt=dt)
    times = [
        d.status.last_notified
        for d in s.decisions
        if d.reason in (NotifyReason.FIRED, NotifyReason.REPEAT)
    ]
    for a, b in itertools.pairwise(times):
        assert a is not None
        assert b is not None
        assert (b - a).total_seconds() >= cooldown


@settings(max_examples=100, deadline=None)
@given(kind=rule_kinds, path=markets)
def test_evaluation_is_deterministic(
    kind: tuple[str, str, dict[str, Any]], path: list[tuple[float, float, Any]]
) -> None:
    name, subject, options = kind

    def run() -> list[Any]:
        s = Stepper(make_rule(name, subject, **options))
        for dt, spot, level in path:
            s.step({"spot": spot, "hvl": level}, dt=dt)
        return [(d.reason, d.status, d.observation) for d in s.decisions]

    assert run() == run()
