"""Mutes and subscriptions as inputs to the decision: table-driven, through the pure core."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gexbot.core.alerts.audience import Audience, Mute, Scope, Subscription
from gexbot.core.alerts.events import events_for
from gexbot.core.alerts.lifecycle import Decision
from tests.rulekit import T0, Stepper, make_rule

UNTIL = T0 + timedelta(days=1)
MUTE_ALL = Audience(mutes=(Mute(Scope.ALL, "all", UNTIL),))


@pytest.mark.parametrize(
    ("mute", "rule_id", "symbol", "covered"),
    [
        (Mute(Scope.ALL, "all", UNTIL), "r", "BTCUSDT", True),
        (Mute(Scope.RULE, "r", UNTIL), "r", "ETHUSDT", True),
        (Mute(Scope.RULE, "r", UNTIL), "other", "BTCUSDT", False),
        (Mute(Scope.SYMBOL, "BTCUSDT", UNTIL), "any-rule", "BTCUSDT", True),
        (Mute(Scope.SYMBOL, "BTCUSDT", UNTIL), "r", "ETHUSDT", False),
    ],
)
def test_what_a_mute_covers(mute: Mute, rule_id: str, symbol: str, covered: bool) -> None:
    assert Audience(mutes=(mute,)).muted(rule_id, symbol) is covered


@pytest.mark.parametrize(
    ("sub", "rule_id", "symbol", "channels"),
    [
        (Subscription("telegram", "42", Scope.RULE, "r"), "r", "ETHUSDT", ("telegram:42",)),
        (Subscription("slack", "C1", Scope.SYMBOL, "BTCUSDT"), "x", "BTCUSDT", ("slack:C1",)),
        (Subscription("slack", "C1", Scope.SYMBOL, "BTCUSDT"), "x", "ETHUSDT", ()),
        # `subscribe all` is refused by the parser; a stray row must not route everything
        (Subscription("slack", "C1", Scope.ALL, "all"), "x", "ETHUSDT", ()),
    ],
)
def test_who_a_subscription_adds(
    sub: Subscription, rule_id: str, symbol: str, channels: tuple[str, ...]
) -> None:
    assert Audience(subscriptions=(sub,)).subscribers(rule_id, symbol) == channels


# (rule kwargs, spots, muted per step, expected reasons per step)
CASES: dict[str, tuple[dict[str, Any], list[float], list[bool], list[str | None]]] = {
    "a muted cross is recorded as silenced, the next one fires": (
        {"kind": "crosses"},
        [99, 101, 99],
        [False, True, False],
        ["baseline", "silenced", "fired"],
    ),
    "a mute keeps re-baselining crosses, so its end fires nothing stale": (
        {"kind": "crosses"},
        [99, 101, 101],
        [False, True, False],
        ["baseline", "silenced", None],
    ),
    "a state alert silenced while true does not fire when the mute ends": (
        {"kind": "above", "subject": 100.0},
        [99, 101, 101, 99, 101],
        [False, True, False, False, False],
        ["baseline", "silenced", None, "rearmed", "fired"],
    ),
    "no resolve notice follows an alert nobody saw": (
        {"kind": "below", "subject": 100.0, "resolve": True},
        [101, 99, 101],
        [False, True, False],
        ["baseline", "silenced", "rearmed"],
    ),
    "a reminder due during a mute is silenced": (
        {"kind": "above", "subject": 100.0, "repeat": 60.0},
        [99, 101, 101, 101],
        [False, False, False, True],
        ["baseline", "fired", None, "silenced"],
    ),
    "`for` keeps counting through a mute": (
        {"kind": "above", "subject": 100.0, "hold": 30.0},
        [99, 101, 101, 101],
        [False, True, True, False],
        ["baseline", "pending", "silenced", None],
    ),
    "a cooldown outranks a mute: nothing to silence": (
        {"kind": "crosses", "cooldown": 120.0},
        [99, 101, 99],
        [False, False, True],
        ["baseline", "fired", "cooldown"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_mutes_in_the_lifecycle(name: str) -> None:
    kwargs, spots, muted, expected = CASES[name]
    kwargs = dict(kwargs)
    rule = make_rule(kwargs.pop("kind"), kwargs.pop("subject", "hvl"), **kwargs)
    stepper = Stepper(rule)
    got = []
    for spot, m in zip(spots, muted, strict=True):
        stepper.audience = MUTE_ALL if m else Audience()
        reason = stepper.step({"spot": spot, "hvl": 100})
        got.append(None if reason is None else reason.value)
    assert got == expected
    assert all(d.notify is False for d in stepper.decisions if d.reason.value == "silenced")


def test_subscribers_are_added_after_the_rule_s_own_channels() -> None:
    stepper = Stepper(make_rule("crosses"))
    stepper.run([{"spot": 99, "hvl": 100}, {"spot": 101, "hvl": 100}])
    fired: list[Decision] = stepper.sent
    audience = Audience(
        subscriptions=(
            Subscription("telegram", "7", Scope.SYMBOL, "BTCUSDT"),
            Subscription("slack", "C9", Scope.SYMBOL, "ETHUSDT"),
        )
    )
    [(event, channels)] = events_for(fired, {"r": stepper.rule}, now=stepper.now, audience=audience)
    assert event.rule_id == "r"
    assert channels == ("tty", "telegram:7")
