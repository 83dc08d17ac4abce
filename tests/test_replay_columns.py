"""The column replay finds exactly what the snapshot-by-snapshot replay finds: every alert,
at the same time, for the same reason, with the same event, in the same order."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gexbot.core.language.model import Rule
from gexbot.core.market.snapshot import Level, SymbolSnapshot, SymbolStatus
from gexbot.core.replay.columns import replay_columns
from gexbot.core.replay.history import histories
from tests.reference_replay import frames, replay
from tests.rulekit import T0, chain_facts, make_rule, snapshot

SYMBOLS = ("BTCUSDT", "ETHUSDT")
LEVEL = st.one_of(st.none(), st.sampled_from([98.0, 100.0, 101.5, 104.0]))
SHARE = st.sampled_from([0.1, 0.4, 0.45, 0.9])


@st.composite
def random_histories(draw: st.DrawFn) -> dict[str, list[SymbolSnapshot]]:
    """Random walks around the levels, with null levels, missing rows and gaps."""
    out = {}
    for sym in SYMBOLS:
        n = draw(st.integers(0, 60))
        spot = 100.0
        rows = []
        t = 0
        for _ in range(n):
            t += draw(st.sampled_from([30, 30, 30, 30, 120]))  # now and then a gap
            spot += draw(st.sampled_from([-1.5, -0.5, -0.1, 0.0, 0.1, 0.5, 1.5]))
            at = T0 + timedelta(seconds=t)
            if draw(st.integers(0, 15)) == 0:
                rows.append(SymbolSnapshot(symbol=sym, status=SymbolStatus.MISSING, computed_at=at))
                continue
            hvl = draw(st.one_of(st.just(100.0), LEVEL))
            row = snapshot(
                round(spot, 2),
                at=at,
                symbol=sym,
                hvl=hvl,
                call_resistance=draw(LEVEL),
                put_support=draw(st.one_of(st.just(97.0), LEVEL)),
                em_upper_1sd=102.0,
                em_lower_1sd=draw(st.sampled_from([97.0, None])),
            )
            if draw(st.integers(0, 3)):  # from the chains: the roll-off shares and settlement
                shares = {
                    lv: draw(SHARE)
                    for lv in (Level.CALL_RESISTANCE, Level.PUT_SUPPORT)
                    if draw(st.booleans())
                }
                settles = at + timedelta(seconds=draw(st.sampled_from([600, 3000, 7200, 20000])))
                facts = replace(chain_facts(at), settles_at=settles, roll_off=shares)
                row = replace(row, chain=facts)
            rows.append(row)
        out[sym] = rows
    return out


TIMING = {
    "hold": st.sampled_from([0.0, 0.0, 60.0, 100.0]),  # 100: waits across rows, and gaps
    "cooldown": st.sampled_from([0.0, 0.0, 90.0]),
    "symbols": st.sampled_from([None, None, ("ETHUSDT",), ("ETHUSDT", "BTCUSDT")]),
}


@st.composite
def rules(draw: st.DrawFn) -> list[Rule]:
    """A few rules of every kind, with dead bands, re-arm, for, cooldown, repeat, resolve."""
    out = []
    for i in range(draw(st.integers(1, 6))):
        kind = draw(
            st.sampled_from(["crosses", "near", "above", "below", "outside", "moved", "rolls_off"])
        )
        timing = {k: draw(v) for k, v in TIMING.items()}
        rid = f"r{i}"
        level = draw(st.sampled_from(["hvl", "call_resistance", "put_support"]))
        if kind == "crosses":
            direction = draw(st.sampled_from(["any", "up", "down"]))
            buffer_pct = draw(st.sampled_from([0.0, 0.2, 1.0]))
            out.append(
                make_rule(kind, level, rid, buffer_pct=buffer_pct, direction=direction, **timing)
            )
        elif kind == "moved":
            move = draw(st.sampled_from([{"by_pct": 1.0}, {"by_pct": 3.0}, {"by_abs": 2.0}]))
            out.append(make_rule(kind, level, rid, **move, **timing))
        else:
            state = {
                "repeat": draw(st.sampled_from([None, None, 60.0, 100.0])),
                "resolve": draw(st.booleans()),
            }
            if kind == "near":
                band = draw(
                    st.sampled_from(
                        [
                            {"within_pct": 0.5},
                            {"within_pct": 1.0, "rearm_pct": 1.5},
                            {"within_abs": 1.0},
                        ]
                    )
                )
                out.append(make_rule(kind, level, rid, **band, **state, **timing))
            elif kind == "outside":
                out.append(make_rule(kind, "expected_move_1sd", rid, **state, **timing))
            elif kind == "rolls_off":
                wall = draw(st.sampled_from(["call_resistance", "put_support"]))
                roll = {
                    "share_pct": draw(st.sampled_from([40.0, 45.0])),
                    "within_s": draw(st.sampled_from([3600.0, 7200.0])),
                }
                out.append(make_rule(kind, wall, rid, **roll, **state, **timing))
            else:
                subject = draw(st.sampled_from([level, 100.5]))
                out.append(make_rule(kind, subject, rid, **state, **timing))
    return out


def _alerts(result: object) -> list[tuple[object, ...]]:
    return [(a.at, a.rule_id, a.symbol, a.reason, a.event) for a in result.alerts]  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None)
@given(history=random_histories(), rule_set=rules())
def test_columns_and_snapshots_replay_alert_for_alert(
    history: dict[str, list[SymbolSnapshot]], rule_set: list[Rule]
) -> None:
    reference = replay(rule_set, frames(history))
    columns = replay_columns(rule_set, histories(history))
    assert _alerts(columns) == _alerts(reference)
    assert (columns.start, columns.end, columns.snapshots) == (
        reference.start,
        reference.end,
        reference.snapshots,
    )


def test_the_columns_walk_finds_alerts_at_all() -> None:
    # The property above would pass on two empty replays: this history does fire.
    history = {
        "BTCUSDT": [
            snapshot(s, at=T0 + timedelta(seconds=30 * i), hvl=100.0)
            for i, s in enumerate([99, 101, 99, 101])
        ]
    }
    alerts = replay_columns([make_rule("crosses", rule_id="x")], histories(history)).alerts
    assert [(a.at - T0).total_seconds() for a in alerts] == [30, 60, 90]
