"""The personal-alert index picks a superset of what can change: deciding only its candidates
gives the same decisions and statuses as deciding every alert, on random markets and alerts."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gexbot.core.alerts.cycle import run_rules
from gexbot.core.alerts.evaluate import index_rules
from gexbot.core.alerts.states import StatusBook
from gexbot.core.language.model import Band, Condition, ConditionKind, Direction, Rule
from gexbot.core.market.snapshot import BundleSnapshot, Level, SymbolSnapshot, SymbolStatus
from gexbot.core.personal.index import PersonalIndex
from tests.rulekit import T0, bundle, chain_facts, snapshot

SYMBOLS = ("BTCUSDT", "ETHUSDT")
LEVELS = (Level.HVL, Level.CALL_RESISTANCE, Level.PUT_SUPPORT)

conditions = st.one_of(
    st.builds(
        lambda lv, share, within: Condition(
            ConditionKind.ROLLS_OFF, level=lv, share_pct=share, within_s=within
        ),
        st.sampled_from([Level.CALL_RESISTANCE, Level.PUT_SUPPORT]),
        st.sampled_from([30.0, 45.0]),
        st.sampled_from([3600.0, 7200.0]),
    ),
    st.builds(
        lambda lv, d, b: Condition(ConditionKind.CROSSES, level=lv, direction=d, buffer_pct=b),
        st.sampled_from(LEVELS),
        st.sampled_from(list(Direction)),
        st.sampled_from([0.0, 0.1, 0.5]),
    ),
    st.builds(
        lambda lv, pct: Condition(ConditionKind.NEAR, level=lv, within_pct=pct),
        st.sampled_from(LEVELS),
        st.sampled_from([0.2, 0.5, 1.0]),
    ),
    st.builds(
        lambda lv, a: Condition(ConditionKind.NEAR, level=lv, within_abs=a),
        st.sampled_from(LEVELS),
        st.sampled_from([50.0, 300.0]),
    ),
    st.builds(
        lambda k, lv: Condition(k, level=lv),
        st.sampled_from([ConditionKind.ABOVE, ConditionKind.BELOW]),
        st.sampled_from(LEVELS),
    ),
    st.builds(
        lambda k, t: Condition(k, threshold=t),
        st.sampled_from([ConditionKind.ABOVE, ConditionKind.BELOW]),
        st.sampled_from([99000.0, 99500.0, 100000.0, 100250.0, 101000.0]),
    ),
    st.builds(lambda b: Condition(ConditionKind.OUTSIDE, band=b), st.sampled_from(list(Band))),
    st.builds(
        lambda lv, p: Condition(ConditionKind.MOVED, level=lv, by_pct=p),
        st.sampled_from(LEVELS),
        st.sampled_from([0.2, 1.0]),
    ),
    st.builds(
        lambda lv, a: Condition(ConditionKind.MOVED, level=lv, by_abs=a),
        st.sampled_from(LEVELS),
        st.sampled_from([250.0, 500.0]),
    ),
)
# Grids make the edges happen: spot exactly on a price, a level moving exactly by a size.
SPOTS = st.one_of(st.floats(98500, 101500), st.sampled_from([98500.0 + 250 * i for i in range(13)]))
HVLS = st.one_of(st.floats(99400, 100600), st.sampled_from([99500.0, 99750.0, 100000.0, 100250.0]))
alerts = st.lists(
    st.tuples(
        conditions,
        st.sampled_from(SYMBOLS),
        st.sampled_from([0.0, 0.0, 60.0]),  # for
        st.sampled_from([0.0, 0.0, 120.0]),  # cooldown
    ),
    min_size=1,
    max_size=30,
)
market = st.lists(
    st.tuples(
        SPOTS,
        HVLS,
        st.sampled_from([None, 100800.0, 101200.0]),  # call resistance (sometimes null)
        st.sampled_from(["ok", "ok", "ok", "ok", "missing"]),
        st.integers(0, 3),  # which event happens before this step (see below)
        # From the chains (a roll-off share and the seconds to settlement) or from BackQuant.
        st.one_of(
            st.none(),
            st.tuples(st.sampled_from([0.2, 0.4, 0.6]), st.sampled_from([900, 5400, 9000])),
        ),
    ),
    min_size=2,
    max_size=40,
)


def _bundle(symbols: list[SymbolSnapshot], at: Any) -> BundleSnapshot:
    return bundle(*symbols, at=at)


def _snap(
    sym: str,
    spot: float,
    hvl: float,
    cr: float | None,
    status: str,
    at: Any,
    chain: tuple[float, int] | None = None,
) -> SymbolSnapshot:
    if status == "missing":
        return SymbolSnapshot(symbol=sym, status=SymbolStatus.MISSING)
    shift = 1.0 if sym == "BTCUSDT" else 1.0005  # the second symbol moves a little apart
    snap = _levels(sym, spot * shift, hvl, cr, at)
    if chain is None:
        return snap
    share, settles_in = chain
    shares = {Level.CALL_RESISTANCE: share, Level.PUT_SUPPORT: 1 - share}
    facts = replace(chain_facts(at), settles_at=at + timedelta(seconds=settles_in), roll_off=shares)
    return replace(snap, chain=facts)


def _levels(sym: str, spot: float, hvl: float, cr: float | None, at: Any) -> SymbolSnapshot:
    return snapshot(
        spot,
        at=at,
        symbol=sym,
        hvl=hvl,
        call_resistance=cr,
        put_support=99000.0,
        em_upper_1sd=100700.0,
        em_lower_1sd=99300.0,
        em_upper_2sd=101400.0,
        em_lower_2sd=98600.0,
    )


@settings(max_examples=300, deadline=None)
@given(alerts, market, st.randoms(use_true_random=False))
def test_deciding_the_candidates_equals_deciding_everything(
    specs: list[tuple[Condition, str, float, float]], steps: list[Any], rnd: Any
) -> None:
    rules = [
        Rule(id=f"#{i}", condition=c, symbols=(sym,), notify=("telegram:1",), hold=h, cooldown=cd)
        for i, (c, sym, h, cd) in enumerate(specs)
    ]
    everything, indexed = StatusBook(), StatusBook()
    index = PersonalIndex()
    live: dict[str, Rule] = {}
    waiting = list(rules)
    previous_all: BundleSnapshot | None = None
    previous_idx: BundleSnapshot | None = None
    now = T0
    for spot, hvl, cr, status, event, chain in steps:
        now += timedelta(seconds=30)
        # Alerts arrive (event 1), one is deleted (2), or the process reloads (3).
        if event == 1 and waiting:
            rule = waiting.pop(0)
            live[rule.id] = rule
            index.add(rule, indexed.status(rule.id, rule.symbols[0]))  # type: ignore[index]
        elif event == 2 and live:
            gone = rnd.choice(sorted(live))
            del live[gone]
            index.remove(gone)
            everything.pop(gone, None)
            indexed.pop(gone, None)
        elif event == 3:
            index = PersonalIndex()
            for rule in live.values():
                index.add(rule, indexed.status(rule.id, rule.symbols[0]))  # type: ignore[index]
        if not live and waiting:
            rule = waiting.pop(0)
            live[rule.id] = rule
            index.add(rule, None)
        current = _bundle([_snap(s, spot, hvl, cr, status, now, chain) for s in SYMBOLS], now)

        full = run_rules(index_rules(live.values()), everything, previous_all, current, now=now)
        everything.apply(full.statuses)
        previous_all = current

        picked = index.candidates(current)
        assert len({r.id for r in picked}) == len(picked)
        part = run_rules(index_rules(picked), indexed, previous_idx, current, now=now)
        indexed.apply(part.statuses)
        index.update((rule_id, st) for (rule_id, _), st in part.statuses.items())
        previous_idx = current

        def key(d: Any) -> tuple[str, str, str]:
            return (d.observation.rule_id, d.observation.symbol, d.reason.value)

        assert sorted(map(key, part.decisions)) == sorted(map(key, full.decisions))
        assert indexed == everything


def test_a_quiet_market_wakes_nothing_and_a_cross_wakes_only_that_side() -> None:
    index = PersonalIndex()
    cross = Condition(ConditionKind.CROSSES, level=Level.HVL, buffer_pct=0.1)
    btc, me = ("BTCUSDT",), ("telegram:1",)
    rules = [Rule(id=f"#{i}", condition=cross, symbols=btc, notify=me) for i in range(1000)]
    rules += [
        Rule(f"#p{i}", Condition(ConditionKind.ABOVE, threshold=100000.0 + 10 * i), btc, me)
        for i in range(1000)
    ]
    book = StatusBook()
    for rule in rules:
        index.add(rule, None)
    now = T0
    spots = [99000.0, 99010.0, 99020.0, 101000.0, 101005.0]
    woken = []
    previous: BundleSnapshot | None = None
    for spot in spots:
        now += timedelta(seconds=30)
        current = bundle(snapshot(spot, at=now, hvl=100000.0), at=now)
        picked = index.candidates(current)
        woken.append(len(picked))
        result = run_rules(index_rules(picked), book, previous, current, now=now)
        book.apply(result.statuses)
        index.update((r, s) for (r, _), s in result.statuses.items())
        previous = current
    # Everything on the first look (baselines); nothing while spot idles under the level;
    # the cross wakes the 1,000 crossers and the 101 prices from 100,000 to 101,000; the last
    # step wakes only `above 101000`, which spot at 101,000 had not yet passed.
    assert woken == [2000, 0, 0, 1000 + 101, 1]


def _both_ways(rules: list[Rule], markets: list[dict[str, float]]) -> list[list[str]]:
    """Decide on each market twice, every alert and the index's candidates; assert they agree
    and return the sending decisions per step."""
    everything, indexed, index = StatusBook(), StatusBook(), PersonalIndex()
    for rule in rules:
        index.add(rule, None)
    previous: BundleSnapshot | None = None
    sent = []
    now = T0
    for m in markets:
        now += timedelta(seconds=30)
        current = bundle(snapshot(at=now, **m), at=now)  # type: ignore[arg-type]
        full = run_rules(rules, everything, previous, current, now=now)
        everything.apply(full.statuses)
        part = run_rules(
            index_rules(index.candidates(current)), indexed, previous, current, now=now
        )
        indexed.apply(part.statuses)
        index.update((r, s) for (r, _), s in part.statuses.items())
        assert sorted(d.observation.rule_id for d in part.decisions) == sorted(
            d.observation.rule_id for d in full.decisions
        )
        sent.append(sorted(d.observation.rule_id for d in part.alerts))
        previous = current
    assert indexed == everything
    return sent


def test_spot_leaving_a_price_it_sat_on_and_a_level_moving_by_exactly_the_size_wake() -> None:
    btc, me = ("BTCUSDT",), ("telegram:1",)
    rules = [
        Rule("#above", Condition(ConditionKind.ABOVE, threshold=100000.0), btc, me),
        Rule("#below", Condition(ConditionKind.BELOW, threshold=100000.0), btc, me),
        Rule("#moved", Condition(ConditionKind.MOVED, level=Level.HVL, by_abs=250.0), btc, me),
    ]
    steps = [
        {"spot": 99900.0, "hvl": 99000.0},
        {"spot": 100000.0, "hvl": 99000.0},  # on the price: neither above nor below
        {"spot": 100100.0, "hvl": 99250.0},  # leaves it upwards; hvl moved by exactly 250
        {"spot": 100000.0, "hvl": 99250.0},  # back onto it
        {"spot": 99900.0, "hvl": 99250.0},  # leaves it downwards
    ]
    assert _both_ways(rules, steps) == [[], [], ["#above", "#moved"], [], ["#below"]]
