"""`GEXBOT_SOURCE=both`: the cross-check (pure, then over HTTP against the simulator), the
fallback to the chains with its warning, and the re-baseline that keeps a change of source from
alerting by itself (in the core, and through the real process)."""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from gexbot.adapters.backquant import BackQuantClient, RetryPolicy, build_http_client
from gexbot.adapters.chains import ChainSource, build_venue_clients
from gexbot.adapters.dual import DualSource
from gexbot.core.alerts.states import AlertState, NotifyReason
from gexbot.core.chains.crosscheck import Tolerance, cross_check
from gexbot.core.chains.venues import Venue
from gexbot.core.market.snapshot import Agreement, Level, SymbolStatus
from gexbot.core.present.provenance import agreement_line, chain_line, source_line
from gexbot.core.present.render import plain_text, render
from gexbot.core.present.webhook import webhook_body
from gexbot.sim.market import Simulator
from gexbot.sim.server import SimServer
from gexbot.store.engine import make_engine, migrate
from gexbot.store.snapshots import load_last_bundle, save_snapshot
from tests.conftest import Clock, Sleeps
from tests.processes import clean_env, sim_server
from tests.rulekit import T0, Stepper, alert_event, bundle, chain_facts, make_rule, snapshot
from tests.test_cli import gexbot
from tests.test_feed_warnings import Warner

TOL = Tolerance(walls_pct=0.0, levels_pct=1.0, after=3)


# -- the comparison (pure) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "backquant", "chains", "differs"),
    [
        ("call_resistance", 85000, 85000, False),
        ("call_resistance", 85000, 86000, True),  # another strike
        ("put_support", 75000, None, True),  # one side has it, the other not
        ("call_wall_3", None, None, False),  # neither: agreement
        ("hvl", 80000, 80700, False),  # 0.875 % of spot 80,000: within 1 %
        ("hvl", 80000, 80900, True),  # 1.125 %
        ("max_pain", 80000, 79100, True),
        ("odte.hvl", 80000, 80500, False),
    ],
)
def test_each_level_is_compared_by_its_own_tolerance(
    level: str, backquant: float | None, chains: float | None, differs: bool
) -> None:
    name = level.replace(".", "_")
    bq = snapshot(80000, T0, "BTCUSDT", **{name: backquant})
    ch = snapshot(80000, T0, "BTCUSDT", **{name: chains})
    got = cross_check(bq, ch, prior=None, at=T0, tolerance=TOL)
    assert got is not None
    assert [d.level.value for d in got.differences] == ([level] if differs else [])


def test_a_difference_counts_the_checks_it_lasts_and_resets_on_agreement() -> None:
    bq = snapshot(80000, call_resistance=85000, hvl=80000)
    apart = snapshot(80000, call_resistance=86000, hvl=80000)
    agreement: Agreement | None = None
    for n in (1, 2, 3):
        agreement = cross_check(bq, apart, prior=agreement, at=T0, tolerance=TOL)
        assert agreement is not None
        assert [d.checks for d in agreement.differences] == [n]
        assert bool(agreement.disagreeing) is (n >= 3)
    agreement = cross_check(bq, bq, prior=agreement, at=T0, tolerance=TOL)
    assert agreement is not None
    assert agreement.differences == ()
    again = cross_check(bq, apart, prior=agreement, at=T0, tolerance=TOL)
    assert again is not None
    assert again.differences[0].checks == 1


def test_nothing_is_compared_when_a_side_has_no_data() -> None:
    missing = replace(snapshot(80000), status=SymbolStatus.MISSING)
    assert cross_check(snapshot(80000), missing, prior=None, at=T0, tolerance=TOL) is None


# -- the warnings (pure) -----------------------------------------------------------------------


def _checked(differences: int, checks: int) -> Agreement:
    snap_a, snap_b = snapshot(80000, call_resistance=85000), snapshot(80000, call_resistance=86000)
    agreement = None
    for _ in range(checks):
        agreement = cross_check(
            snap_a, snap_b if differences else snap_a, prior=agreement, at=T0, tolerance=TOL
        )
    assert agreement is not None
    return agreement


def test_a_lasting_disagreement_warns_once_naming_both_values_and_then_recovers() -> None:
    w = Warner()
    btc = snapshot(80000, call_resistance=85000)
    assert w.step([replace(btc, agreement=_checked(1, 2))]) == []  # two checks: not yet
    fired = w.step([replace(btc, agreement=_checked(1, 3))])
    assert len(fired) == 1
    assert fired[0].startswith("fired: BTCUSDT: BackQuant's std levels and the venues' chains")
    assert "call resistance 85,000 (BackQuant) vs 86,000 (chains)" in fired[0]
    assert w.step([replace(btc, agreement=_checked(1, 4))]) == []  # said once
    assert w.step([btc]) == []  # no check since (a restart): the last word stands
    assert w.step([replace(btc, agreement=_checked(0, 1))]) == [
        "resolved: BTCUSDT: BackQuant's std levels and the venues' chains agree again."
    ]


def test_a_fallback_warns_once_and_its_end_is_said() -> None:
    w = Warner()
    chains = replace(
        snapshot(80000, hvl=79000),
        chain=chain_facts(),
        fallback="has no data for it (missing)",
    )
    fired = w.step([chains])
    assert fired == [
        "fired: BTCUSDT: BackQuant has no data for it (missing); its levels come from the "
        "Deribit + Bybit chains (std positioning) until BackQuant serves it again."
    ]
    assert w.step([chains]) == []
    assert w.step([snapshot(80000, hvl=79000)]) == [
        "resolved: BTCUSDT is served by BackQuant again; its levels are BackQuant's."
    ]


def test_a_symbol_the_chains_do_not_list_is_said_to_be_not_available() -> None:
    w = Warner(missing=0)
    hype = replace(
        snapshot(30, symbol="HYPEUSDT"),
        status=SymbolStatus.MISSING,
        spot=None,
        unavailable="not available from the chains (no listed options for HYPE on Deribit)",
    )
    assert w.step([hype]) == [
        "fired: HYPEUSDT is not available from the chains (no listed options for HYPE on "
        "Deribit); its rules are paused until it is."
    ]


# -- a change of source re-baselines (pure) ------------------------------------------------------


def test_a_crossing_caused_only_by_the_switch_is_not_an_alert() -> None:
    s = Stepper(make_rule("crosses", "hvl"))
    # BackQuant's HVL is below spot, the chains' above: switching looks like a cross down.
    assert s.run([{"spot": 80500, "hvl": 80000}, {"spot": 80500, "hvl": 80000}]) == [
        "baseline",
        None,
    ]
    reasons = s.run(
        [
            {"chains": True, "spot": 80500, "hvl": 81000},  # the switch: re-baselined below
            {"chains": True, "spot": 80500, "hvl": 81000},
            {"chains": True, "spot": 81500, "hvl": 81000},  # a real cross on the chains: sent
        ]
    )
    assert reasons == ["rebaselined", None, "fired"]
    assert [d.reason for d in s.sent] == [NotifyReason.FIRED]
    # And back to BackQuant, whose HVL is above spot now: the same again.
    assert s.run([{"spot": 81500, "hvl": 82000}]) == ["rebaselined"]
    assert len(s.sent) == 1


def test_a_state_made_true_by_the_switch_is_taken_in_silently() -> None:
    s = Stepper(make_rule("below", "hvl", resolve=True))
    assert s.run([{"spot": 80000, "hvl": 79000}]) == ["baseline"]
    assert s.run([{"chains": True, "spot": 80000, "hvl": 81000}]) == ["rebaselined"]
    assert s.status is not None
    assert s.status.state is AlertState.FIRING
    # Nobody was told it became true, so nobody is told it stopped.
    assert s.run([{"chains": True, "spot": 80000, "hvl": 79000}]) == ["rearmed"]
    assert s.sent == []


def test_the_source_survives_a_restart_so_a_switch_after_it_is_seen(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    migrate(engine)
    snap = replace(
        snapshot(80000, hvl=79000, zero_gamma=78500),
        chain=chain_facts(),
        fallback="is down (HTTP 503)",
    )
    with engine.begin() as conn:
        save_snapshot(conn, bundle(snap))
    with engine.connect() as conn:
        back = load_last_bundle(conn)
    assert back is not None
    got = back.symbols["BTCUSDT"]
    assert got.chain == snap.chain
    assert got.fallback == "is down (HTTP 503)"
    assert got.level(Level.ZERO_GAMMA) == 78500


# -- what a trader reads -------------------------------------------------------------------------


def test_an_alert_on_chain_levels_names_its_source_in_every_form() -> None:
    event = alert_event(source="Deribit + Bybit chains")
    text = plain_text([render(event)])
    assert "source: Deribit + Bybit chains" in text
    body = webhook_body(event, render(event), id_="gxb_" + "0" * 32)
    assert body["source"] == "Deribit + Bybit chains"
    plain = alert_event()
    assert "source:" not in plain_text([render(plain)])
    assert webhook_body(plain, render(plain), id_="gxb_" + "0" * 32)["source"] == "BackQuant"


def test_levels_lines_say_the_source_and_the_agreement() -> None:
    snap = replace(snapshot(80000), chain=chain_facts(), fallback="refused the API key (HTTP 401)")
    assert source_line(snap) == (
        "source: Deribit + Bybit chains (BackQuant refused the API key (HTTP 401))"
    )
    assert agreement_line(snap) is None
    assert (
        chain_line(snap)
        == "net GEX +100.0M USD per 1% (dealers long gamma) · no zero gamma within ±20%"
    )
    assert chain_line(replace(snap, chain=None)) is None
    checked = replace(snapshot(80000), agreement=_checked(1, 3))
    line = agreement_line(checked)
    assert line is not None
    assert "DISAGREE on call resistance 85,000 vs 86,000 (3 checks)" in line


# -- over HTTP, against the simulator ----------------------------------------------------------


class Mono:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def dual(
    server: SimServer, clock: Clock, sleeps: Sleeps
) -> AsyncIterator[tuple[DualSource, Mono]]:
    mono = Mono()
    venues = build_venue_clients({v: server.url for v in Venue})
    chains = ChainSource(venues, wall_clock=clock, monotonic=mono, stale_after=90)
    async with build_http_client(server.url, server.api_key, timeout=5.0) as http:
        primary = BackQuantClient(
            http,
            api_key=server.api_key,
            retry=RetryPolicy(attempts=1, base_delay=1.0, max_delay=1.0, max_wait=1.0),
            rng=random.Random(1),
            sleep=sleeps,
            wall_clock=clock,
        )
        yield (
            DualSource(
                primary,
                chains,
                check_every=60,
                tolerance=TOL,
                interval=30,
                monotonic=mono,
                wall_clock=clock,
                rng=random.Random(2),
            ),
            mono,
        )
    for c in venues.values():
        await c.aclose()


SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "HYPEUSDT"]


async def test_on_the_simulator_the_two_sources_agree(dual: tuple[DualSource, Mono]) -> None:
    source, _ = dual
    await source.bundle(SYMBOLS)
    await source.checked()  # beside the poll: it shows from the next one
    got = await source.bundle(SYMBOLS)
    for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        snap = got.symbols[sym]
        assert not snap.from_chains  # BackQuant serves: its levels are used
        assert snap.agreement is not None, sym
        assert snap.agreement.differences == (), (sym, snap.agreement)
    assert got.symbols["HYPEUSDT"].agreement is None  # the chains do not list it


async def test_a_pinned_backquant_level_disagrees_after_three_checks(
    dual: tuple[DualSource, Mono], sim: Simulator, clock: Clock, server: SimServer
) -> None:
    source, mono = dual
    sim.set_levels("BTCUSDT", call_resistance=123000)  # BackQuant only: the chains keep theirs
    checks = 0
    for _ in range(7):  # polls every 30 s: a check every other poll
        before = sum(1 for p, q in server.request_log if q.get("positioning") == "std")
        got = await source.bundle(["BTCUSDT"])
        await source.checked()
        checks += sum(1 for p, q in server.request_log if q.get("positioning") == "std") - before
        mono.t += 30
        clock.advance(30)
    assert checks == 4  # at 0, 60, 120, 180 s: one extra call a minute
    agreement = source.agreements["BTCUSDT"]
    assert got.symbols["BTCUSDT"].agreement is not None  # the checks before this poll's
    (diff,) = agreement.disagreeing
    assert diff.level is Level.CALL_RESISTANCE
    assert diff.backquant == 123000
    assert diff.chains is not None
    assert diff.chains != 123000


async def test_a_symbol_backquant_misses_comes_from_the_chains(
    dual: tuple[DualSource, Mono], sim: Simulator
) -> None:
    source, _ = dual
    sim.set_missing("ETHUSDT")
    got = await source.bundle(SYMBOLS)
    eth, btc = got.symbols["ETHUSDT"], got.symbols["BTCUSDT"]
    assert eth.usable
    assert eth.from_chains
    assert eth.fallback == "has no data for it (missing)"
    assert eth.chain is not None
    assert set(eth.chain.venues) == {"deribit", "bybit", "okx"}
    assert not btc.from_chains
    assert btc.fallback is None


async def test_a_refused_key_falls_back_whole_and_backquant_is_left_alone(
    dual: tuple[DualSource, Mono], server: SimServer
) -> None:
    source, mono = dual
    server.api_key = "rotated"  # ours is refused from now on
    asked = []
    for _ in range(5):
        before = sum(1 for p, _ in server.request_log if p == "/v2/multi/gex/levels")
        got = await source.bundle(SYMBOLS)
        await source.checked()
        asked.append(sum(1 for p, _ in server.request_log if p == "/v2/multi/gex/levels") - before)
        mono.t += 30
    btc = got.symbols["BTCUSDT"]
    assert btc.from_chains
    assert btc.fallback == "refused the API key (HTTP 401)"
    hype = got.symbols["HYPEUSDT"]
    assert hype.status is SymbolStatus.MISSING
    assert hype.fallback is None
    assert hype.unavailable is not None
    assert hype.unavailable.startswith(
        "BackQuant refused the API key (HTTP 401), not available from the chains"
    )
    # The poll and the first cross-check, then nothing: a refused key is not asked again at
    # every poll (it rests five minutes, as the poll loop would have).
    assert asked == [2, 0, 0, 0, 0]


async def test_a_venue_down_is_left_out_of_the_fallback(
    dual: tuple[DualSource, Mono], sim: Simulator
) -> None:
    source, _ = dual
    sim.set_missing("BTCUSDT")
    sim.venues_down.add("bybit")
    got = await source.bundle(["BTCUSDT"])
    btc = got.symbols["BTCUSDT"]
    assert btc.chain is not None
    assert btc.chain.venues == ("deribit", "okx")


# -- through the real process --------------------------------------------------------------------


def test_both_falls_back_warns_and_sends_no_spurious_alert(tmp_path: Path) -> None:
    """BackQuant's HVL is pinned far below spot, the chains' is above it: `hvl-cross` would
    fire on the switch alone. The first run baselines on BackQuant; the second, with the key
    refused, runs on the chains: the fallback warning, and no crossing."""
    (tmp_path / "scenario.yaml").write_text(
        "walk: false\nsteps:\n  - at: 0\n    levels: {BTCUSDT: {hvl: 1000}}\n"
    )
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "channels: {tty: {terminal: true}}\n"
        "warnings: {notify: [tty]}\n"
        "rules: [{id: hvl-cross, symbols: [BTCUSDT], when: {crosses: hvl}, notify: tty}]\n"
    )
    db = tmp_path / "b.db"
    with sim_server("--scenario", "scenario.yaml", env=clean_env(), cwd=tmp_path) as url:
        env = {
            **clean_env(),
            "GEXBOT_SOURCE": "both",
            "GEXBOT_API_URL": url,
            "GEXBOT_API_KEY": "demo",
            "GEXBOT_DERIBIT_URL": url,
            "GEXBOT_BYBIT_URL": url,
            "GEXBOT_OKX_URL": url,
            "GEXBOT_RULES": str(rules),
            "GEXBOT_DATABASE_URL": f"sqlite:///{db}",
            "GEXBOT_SYMBOLS": "BTCUSDT",
        }
        first = gexbot("once", env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        second = gexbot("once", env={**env, "GEXBOT_API_KEY": "wrong"}, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    out = " ".join(second.stdout.split())
    assert "BTCUSDT: BackQuant refused the API key (HTTP 401); its levels come from the" in out
    assert "crossed" not in out
    assert "hvl-cross" not in out
    with contextlib.closing(sqlite3.connect(db)) as conn:
        reason = conn.execute(
            "SELECT last_reason FROM alert_state WHERE rule_id = 'hvl-cross'"
        ).fetchone()
    assert reason == ("rebaselined",)  # recorded, with its reason


def test_gexbot_levels_on_both_shows_the_cross_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gexbot.cli import EXIT_OK, main
    from tests.conftest import threaded_server

    with threaded_server(Simulator(clock=Clock(time.time())), api_key="k") as server:
        monkeypatch.setenv("GEXBOT_SOURCE", "both")
        monkeypatch.setenv("GEXBOT_API_URL", server.url)
        monkeypatch.setenv("GEXBOT_API_KEY", "k")
        for venue in ("DERIBIT", "BYBIT", "OKX"):
            monkeypatch.setenv(f"GEXBOT_{venue}_URL", server.url)
        assert main(["levels", "BTC", "--format", "json"]) == EXIT_OK
    btc = json.loads(capsys.readouterr().out)["symbols"]["BTCUSDT"]
    assert btc["source"] == "backquant"
    # One look waits for the cross-check it started, so the answer carries it.
    assert btc["agreement"]["agrees"] is True
    assert btc["agreement"]["differences"] == []
