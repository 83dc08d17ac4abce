"""`rolls_off`: a wall whose gamma largely settles at the next 08:00 UTC. Its truth table in the
core, the alert as a trader reads it, the rule file's and the chat's spellings, replay, and one
run of the real process on the simulator's chains."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from gexbot.adapters.chains import ChainSource, build_venue_clients
from gexbot.core.alerts.evaluate import roll_off_facts, state_truths
from gexbot.core.alerts.states import NotifyReason
from gexbot.core.chains.venues import Venue
from gexbot.core.language.model import Condition, ConditionKind
from gexbot.core.language.rulefile import parse_rule_file
from gexbot.core.market.snapshot import Level, SymbolSnapshot
from gexbot.core.personal.grammar import AlertSyntaxError, parse_alert
from gexbot.core.present.render import plain_text, render
from gexbot.core.replay.columns import replay_columns
from gexbot.core.replay.history import histories
from gexbot.sim.server import SimServer
from tests.conftest import Clock
from tests.rulekit import T0, Stepper, chain_facts, make_rule, snapshot

COND = Condition(ConditionKind.ROLLS_OFF, level=Level.CALL_RESISTANCE, share_pct=40, within_s=7200)


def _chain(
    share: float | None, settles_in: float, at: Any = T0, cr: float | None = 85000
) -> SymbolSnapshot:
    shares = {} if share is None else {Level.CALL_RESISTANCE: share}
    facts = replace(chain_facts(at), settles_at=at + timedelta(seconds=settles_in), roll_off=shares)
    return replace(snapshot(80000, at=at, call_resistance=cr), chain=facts)


@pytest.mark.parametrize(
    ("snap", "truth"),
    [
        (_chain(0.42, 6600), True),  # 42 % in 1 h 50 m
        (_chain(0.40, 7200), True),  # both bounds hold
        (_chain(0.39, 6600), False),  # too small a share
        (_chain(0.90, 7300), False),  # too far off
        (_chain(0.90, 0), False),  # settling now: it has rolled
        (_chain(None, 6600), None),  # the share is not known
        (_chain(0.9, 6600, cr=None), None),  # no wall
        (snapshot(80000, call_resistance=85000), None),  # BackQuant's levels: no chain
    ],
)
def test_the_truth_table(snap: SymbolSnapshot, truth: bool | None) -> None:
    share, settles_in = roll_off_facts(COND, snap)
    got = state_truths(COND, 80000, snap.levels.get, share=share, settles_in=settles_in)
    assert (got[0] if got is not None else None) is truth


def test_it_fires_once_reads_as_a_trader_says_it_and_rearms_after_the_roll() -> None:
    rule = make_rule("rolls_off", "call_resistance", "cr-roll", share_pct=40, within_s=7200)
    s = Stepper(rule)
    reasons = [
        s.step_snapshot(_chain(0.42, 9000, at=T0 + timedelta(minutes=1))),  # 2 h 30 m: not yet
        s.step_snapshot(_chain(0.42, 6600, at=T0 + timedelta(minutes=2))),  # 1 h 50 m: fires
        s.step_snapshot(_chain(0.45, 6000, at=T0 + timedelta(minutes=3))),  # still: said once
        s.step_snapshot(_chain(0.05, 86000, at=T0 + timedelta(minutes=4))),  # rolled: re-arms
    ]
    assert [r.value if r else None for r in reasons] == ["baseline", "fired", None, "rearmed"]
    (sent,) = s.sent
    event = sent.observation
    assert event.share == pytest.approx(0.42)
    text = plain_text([render(s.events[0])])
    assert text.splitlines()[0].endswith(
        "BTCUSDT call resistance 85,000: 42% of its gamma settles at 13:52 UTC, in 1h50m; "
        "the wall is likely to move"
    )


def test_a_rule_file_and_a_chat_alert_spell_the_same_condition() -> None:
    parsed = parse_rule_file(
        "channels: {tty: {terminal: true}}\n"
        "rules:\n"
        "  - id: roll\n"
        "    when: {rolls_off: {level: call_resistance, share_pct: 40, within: 2h}}\n"
        "    notify: tty\n",
        "r.yaml",
    )
    assert parsed.problems == []
    assert parsed.drafts[0].rule.condition == COND
    typed = parse_alert("btc rolls_off cr 40% 2h")
    assert typed.condition == COND
    assert parse_alert(typed.canonical()) == typed


@pytest.mark.parametrize(
    ("yaml_when", "message"),
    [
        ("{rolls_off: {level: hvl, share_pct: 40, within: 2h}}", "watches a wall, not `hvl`"),
        ("{rolls_off: {level: call_resistance, share_pct: 0, within: 2h}}", "greater than 0"),
        ("{rolls_off: {level: call_resistance, share_pct: 40, within: soon}}", "bad duration"),
        ("{rolls_off: {level: call_resistance, share_pct: 40}}", "within"),
    ],
)
def test_a_wrong_rolls_off_is_a_located_error(yaml_when: str, message: str) -> None:
    parsed = parse_rule_file(
        "channels: {tty: {terminal: true}}\n"
        f"rules:\n  - id: roll\n    when: {yaml_when}\n    notify: tty\n",
        "r.yaml",
    )
    (problem,) = parsed.problems
    assert str(problem).startswith("r.yaml:4:")
    assert message in str(problem)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("btc rolls_off hvl 40% 2h", "watches a wall, not hvl"),
        ("btc rolls_off cr 40 2h", '"40" is not a share'),
        ("btc rolls_off cr 40%", "How soon the settlement is is missing"),
    ],
)
def test_a_wrong_chat_alert_names_the_word(typed: str, message: str) -> None:
    with pytest.raises(AlertSyntaxError, match=message):
        parse_alert(typed)


def test_replay_finds_the_roll_off_from_stored_chain_snapshots() -> None:
    rule = make_rule("rolls_off", "call_resistance", "cr-roll", share_pct=40, within_s=7200)
    rows = [
        _chain(0.42, 9000 - 60 * i, at=T0 + timedelta(minutes=i)) for i in range(0, 60, 1)
    ]  # settlement creeps nearer a minute a row: inside two hours from row 31
    alerts = replay_columns([rule], histories({"BTCUSDT": rows})).alerts
    assert [(a.at - T0) / timedelta(minutes=1) for a in alerts] == [30.0]


async def test_a_roll_off_alert_from_the_simulators_chains_over_http(
    server: SimServer, clock: Clock
) -> None:
    """The venues' books read over HTTP, the levels computed, the rule decided and the alert
    rendered: as the settlement comes within `within`, it fires."""
    source = ChainSource(
        build_venue_clients({v: server.url for v in Venue}),
        wall_clock=clock,
        monotonic=lambda: clock.t,
        stale_after=90,
    )
    try:
        first = (await source.bundle(["BTCUSDT"])).symbols["BTCUSDT"]
        assert first.chain is not None
        assert first.computed_at is not None
        settles_in = (first.chain.settles_at - first.computed_at).total_seconds()
        # Any share of the call-resistance strike (the simulator lists a daily expiry at every
        # strike), once the settlement is less than ten minutes nearer than now.
        rule = make_rule(
            "rolls_off",
            "call_resistance",
            "cr-roll",
            share_pct=0.0001,
            within_s=settles_in - 600,
        )
        s = Stepper(rule)
        assert s.step_snapshot(first) is NotifyReason.BASELINE
        clock.advance(1200)
        later = (await source.bundle(["BTCUSDT"])).symbols["BTCUSDT"]
        assert s.step_snapshot(later) is NotifyReason.FIRED
    finally:
        for c in source._clients.values():
            await c.aclose()
    text = " ".join(plain_text([render(s.events[0])]).split())
    assert text.startswith("🟠 BTCUSDT call resistance")
    assert "of its gamma settles at 08:00 UTC, in" in text
    assert "source: Deribit + Bybit + OKX chains" in text
