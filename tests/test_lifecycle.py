"""Every condition and lifecycle transition, table-driven, asserting on reasons and states."""

from __future__ import annotations

from typing import Any

import pytest

from gexbot.core.alerts.evaluate import Cause
from gexbot.core.alerts.states import AlertState, NotifyReason
from gexbot.core.language.model import Direction
from tests.rulekit import MISSING, STALE, Stepper, make_rule

H = 100.0  # the level in most cases


def m(spot: float, **levels: float | None) -> dict[str, Any]:
    return {"spot": spot, **levels}


# (rule kwargs, markets, expected reasons per step)
CASES: dict[str, tuple[dict[str, Any], list[Any], list[str | None]]] = {
    # --- crosses ---
    "cross: first sight is a baseline, then a cross fires": (
        {"kind": "crosses"},
        [m(99, hvl=H), m(99.5, hvl=H), m(101, hvl=H), m(102, hvl=H)],
        ["baseline", None, "fired", None],
    ),
    "cross: back and forth fires each way": (
        {"kind": "crosses"},
        [m(99, hvl=H), m(101, hvl=H), m(99, hvl=H)],
        ["baseline", "fired", "fired"],
    ),
    "cross: chop inside the dead band never fires": (
        {"kind": "crosses", "buffer_pct": 0.5},
        [m(99, hvl=H), m(100.3, hvl=H), m(99.7, hvl=H), m(100.4, hvl=H), m(100.6, hvl=H)],
        ["baseline", None, None, None, "fired"],
    ),
    "cross: direction up ignores a down cross, re-baselines, fires on the next up": (
        {"kind": "crosses", "direction": "up"},
        [m(101, hvl=H), m(99, hvl=H), m(101, hvl=H)],
        ["baseline", "filtered", "fired"],
    ),
    "cross: a null level is unknown and keeps the baseline": (
        {"kind": "crosses"},
        [m(99, hvl=H), m(101, hvl=None), m(101, hvl=H)],
        ["baseline", None, "fired"],
    ),
    "cross: missing and stale symbols pause the rule without losing the side": (
        {"kind": "crosses"},
        [m(99, hvl=H), MISSING, STALE, m(101, hvl=H)],
        ["baseline", None, None, "fired"],
    ),
    "cross: cooldown suppresses the second cross and still re-baselines": (
        {"kind": "crosses", "cooldown": 120.0},
        [m(99, hvl=H), m(101, hvl=H), m(99, hvl=H), m(99, hvl=H), m(99, hvl=H), m(101, hvl=H)],
        ["baseline", "fired", "cooldown", None, None, "fired"],
    ),
    "cross: `for` waits, fires once held": (
        {"kind": "crosses", "hold": 60.0},
        [m(99, hvl=H), m(101, hvl=H), m(101, hvl=H), m(101, hvl=H), m(101, hvl=H)],
        ["baseline", "pending", None, "fired", None],
    ),
    "cross: `for` interrupted clears without firing": (
        {"kind": "crosses", "hold": 60.0},
        [m(99, hvl=H), m(101, hvl=H), m(99, hvl=H), m(99, hvl=H)],
        ["baseline", "pending", "cleared", None],
    ),
    # --- near ---
    "near: fires on entering, re-arms only past the wider band": (
        {"kind": "near", "subject": "call_resistance", "within_pct": 0.5},
        [
            m(98, call_resistance=H),
            m(99.6, call_resistance=H),
            m(99.8, call_resistance=H),
            m(99.2, call_resistance=H),
            m(98.5, call_resistance=H),
            m(99.7, call_resistance=H),
        ],
        ["baseline", "fired", None, None, "rearmed", "fired"],
    ),
    "near: an absolute band": (
        {"kind": "near", "subject": "put_support", "within_abs": 2, "rearm_abs": 3},
        [
            m(110, put_support=H),
            m(101.5, put_support=H),
            m(102.5, put_support=H),
            m(103.5, put_support=H),
        ],
        ["baseline", "fired", None, "rearmed"],
    ),
    # --- above / below ---
    "below: fires on becoming true, resolves with a notice": (
        {"kind": "below", "subject": "put_support", "resolve": True},
        [m(101, put_support=H), m(99, put_support=H), m(98, put_support=H), m(101, put_support=H)],
        ["baseline", "fired", None, "resolved"],
    ),
    "above a number: re-arms quietly without resolve": (
        {"kind": "above", "subject": 70000},
        [m(69000), m(71000), m(69000), m(71000)],
        ["baseline", "fired", "rearmed", "fired"],
    ),
    "above: true at first sight is a baseline, its clearing sends no resolve": (
        {"kind": "above", "subject": 70000, "resolve": True},
        [m(71000), m(69000), m(71000)],
        ["baseline", "rearmed", "fired"],
    ),
    "below with `for`: pending, then fired, then resolved": (
        {"kind": "below", "subject": "put_support", "hold": 60.0, "resolve": True},
        [
            m(101, put_support=H),
            m(99, put_support=H),
            m(99, put_support=H),
            m(99, put_support=H),
            m(101, put_support=H),
        ],
        ["baseline", "pending", None, "fired", "resolved"],
    ),
    "above with repeat: reminds while true": (
        {"kind": "above", "subject": 70000, "repeat": 60.0},
        [m(69000), m(71000), m(71000), m(71000), m(71000), m(71000)],
        ["baseline", "fired", None, "repeat", None, "repeat"],
    ),
    "repeat never beats cooldown": (
        {"kind": "above", "subject": 70000, "repeat": 30.0, "cooldown": 90.0},
        [m(69000), m(71000), m(71000), m(71000), m(71000)],
        ["baseline", "fired", None, None, "repeat"],
    ),
    # --- outside ---
    "outside the 1 sd band, either side": (
        {"kind": "outside", "subject": "expected_move_1sd"},
        [
            m(100, em_upper_1sd=102, em_lower_1sd=98),
            m(103, em_upper_1sd=102, em_lower_1sd=98),
            m(100, em_upper_1sd=102, em_lower_1sd=98),
            m(97, em_upper_1sd=102, em_lower_1sd=98),
            m(97, em_upper_1sd=None, em_lower_1sd=98),
        ],
        ["baseline", "fired", "rearmed", "fired", None],
    ),
    # --- moved ---
    "moved: first sight sets the baseline, small moves do nothing": (
        {"kind": "moved", "subject": "call_resistance", "by_pct": 1.0},
        [
            m(95, call_resistance=100),
            m(95, call_resistance=100.5),
            m(95, call_resistance=101),
            m(95, call_resistance=101.5),
            m(95, call_resistance=102.1),
        ],
        ["baseline", None, "fired", None, "fired"],
    ),
    "moved: an absolute threshold, either way": (
        {"kind": "moved", "subject": "hvl", "by_abs": 500},
        [m(1, hvl=67000), m(1, hvl=66400), m(1, hvl=66600), m(1, hvl=67000)],
        ["baseline", "fired", None, "fired"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_condition_lifecycle(name: str) -> None:
    kwargs, markets, expected = CASES[name]
    kwargs = dict(kwargs)
    rule = make_rule(kwargs.pop("kind"), kwargs.pop("subject", "hvl"), **kwargs)
    assert Stepper(rule).run(markets) == expected


def test_a_cross_by_spot_and_a_cross_by_the_level_say_which() -> None:
    s = Stepper(make_rule("crosses"))
    s.run([m(99, hvl=H), m(101, hvl=H)])
    by_spot = s.sent[-1].observation
    assert by_spot.cause is Cause.SPOT
    assert by_spot.direction is Direction.UP
    s.run([m(101, hvl=102)])
    by_level = s.sent[-1].observation
    assert by_level.cause is Cause.LEVEL
    assert by_level.direction is Direction.DOWN
    assert by_level.previous_level == H
    assert by_level.level == 102


def test_moved_reports_direction_and_previous_value() -> None:
    s = Stepper(make_rule("moved", "call_resistance", by_pct=1.0))
    s.run([m(95, call_resistance=100), m(95, call_resistance=98)])
    obs = s.sent[-1].observation
    assert obs.direction is Direction.DOWN
    assert obs.previous_level == 100
    assert obs.level == 98


def test_states_sequence_and_notify_sequence_numbers() -> None:
    s = Stepper(make_rule("below", "put_support", hold=30.0, resolve=True))
    seen = []
    for spot in (101, 99, 99, 101):
        s.step(m(spot, put_support=H))
        assert s.status is not None
        seen.append((s.status.state, s.status.seq))
    assert seen == [
        (AlertState.INACTIVE, 0),
        (AlertState.PENDING, 0),
        (AlertState.FIRING, 1),
        (AlertState.INACTIVE, 2),
    ]
    assert [d.reason for d in s.sent] == [NotifyReason.FIRED, NotifyReason.RESOLVED]


def test_rules_only_watch_their_symbols() -> None:
    rule = make_rule("above", 1.0, symbols=("ETHUSDT",))
    s = Stepper(rule)
    assert s.run([m(2), m(0), m(2)]) == [None, None, None]


def test_a_cycle_over_several_symbols_decides_each_independently() -> None:
    from gexbot.core.alerts.cycle import run_rules
    from tests.rulekit import T0, bundle, snapshot

    rule = make_rule("crosses")
    first = bundle(snapshot(99, symbol="BTCUSDT", hvl=H), snapshot(101, symbol="ETHUSDT", hvl=H))
    result = run_rules([rule], {}, None, first, now=T0)
    statuses = {"r": {sym: st for (_, sym), st in result.statuses.items()}}
    second = bundle(snapshot(101, symbol="BTCUSDT", hvl=H), snapshot(101, symbol="ETHUSDT", hvl=H))
    result = run_rules([rule], statuses, first, second, now=T0)
    assert [(d.observation.symbol, d.reason) for d in result.alerts] == [
        ("BTCUSDT", NotifyReason.FIRED)
    ]


def test_reason_names_are_stable() -> None:
    # Stored in the database and logged: renaming one is a migration.
    assert [r.value for r in NotifyReason] == [
        "fired",
        "repeat",
        "resolved",
        "baseline",
        "pending",
        "cleared",
        "rearmed",
        "filtered",
        "rebaselined",
        "cooldown",
        "silenced",
        "unknown",
        "unchanged",
    ]
    assert {r for r in NotifyReason if r.sends} == {
        NotifyReason.FIRED,
        NotifyReason.REPEAT,
        NotifyReason.RESOLVED,
    }


def test_a_status_book_takes_a_cycle_s_changes_in() -> None:
    from gexbot.core.alerts.states import AlertStatus, StatusBook

    book = StatusBook({"r": {"BTCUSDT": AlertStatus(seq=1)}})
    book.apply({("r", "ETHUSDT"): AlertStatus(seq=2), ("q", "BTCUSDT"): AlertStatus(seq=3)})
    assert [book.status("r", "BTCUSDT"), book.status("r", "ETHUSDT")] == [
        AlertStatus(seq=1),
        AlertStatus(seq=2),
    ]
    assert book.status("q", "BTCUSDT") == AlertStatus(seq=3)
    assert book.status("q", "SOLUSDT") is None
    assert book.status("unknown", "BTCUSDT") is None
