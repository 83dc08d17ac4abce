"""The chains as a levels source, over real HTTP: the simulator's venues read back give the
simulator's own `std` levels, each venue alone and all three summed; a venue that fails is left
out; `gexbot levels` runs on the chains without a key."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from gexbot.adapters.chains import ChainSource, build_venue_clients
from gexbot.cli import EXIT_OK, main
from gexbot.core.chains.venues import Venue
from gexbot.core.market.snapshot import Level, SymbolStatus
from gexbot.sim.chain import Levels
from gexbot.sim.market import Simulator
from gexbot.sim.server import SimServer
from tests.conftest import Clock
from tests.conftest import threaded_server as conftest_threaded_server
from tests.processes import clean_env, sim_server
from tests.test_cli import gexbot

STRIKES: dict[Level, Callable[[Levels], float | None]] = {
    Level.HVL: lambda lv: lv.hvl,
    Level.CALL_RESISTANCE: lambda lv: lv.call_walls[0],
    Level.CALL_WALL_2: lambda lv: lv.call_walls[1],
    Level.CALL_WALL_3: lambda lv: lv.call_walls[2],
    Level.PUT_SUPPORT: lambda lv: lv.put_walls[0],
    Level.PUT_WALL_2: lambda lv: lv.put_walls[1],
    Level.PUT_WALL_3: lambda lv: lv.put_walls[2],
    Level.ODTE_HVL: lambda lv: lv.odte_hvl,
    Level.ODTE_CALL_RESISTANCE: lambda lv: lv.odte_call,
    Level.ODTE_PUT_SUPPORT: lambda lv: lv.odte_put,
    Level.MAX_PAIN: lambda lv: lv.max_pain[0],
}


def _source(url: str, venues: tuple[Venue, ...], clock: Clock) -> ChainSource:
    return ChainSource(
        build_venue_clients({v: url for v in venues}),
        wall_clock=clock,
        monotonic=time.monotonic,
        stale_after=90,
    )


async def _close(source: ChainSource) -> None:
    for client in source._clients.values():
        await client.aclose()


def _assert_same(levels: Levels, got: dict[Level, float | None], symbol: str) -> None:
    for level, expected in STRIKES.items():
        assert got[level] == expected(levels), (symbol, level)


@pytest.mark.parametrize(
    "venues",
    [(Venue.DERIBIT,), (Venue.BYBIT,), (Venue.OKX,), (Venue.DERIBIT, Venue.BYBIT, Venue.OKX)],
    ids=["deribit", "bybit", "okx", "all"],
)
async def test_the_simulators_chain_read_back_gives_its_own_levels(
    server: SimServer, sim: Simulator, clock: Clock, venues: tuple[Venue, ...]
) -> None:
    source = _source(server.url, venues, clock)
    try:
        bundle = await source.bundle(["BTCUSDT", "ETHUSDT", "SOLUSDT"])
    finally:
        await _close(source)
    for symbol in ("BTCUSDT", "ETHUSDT") if venues == (Venue.OKX,) else ("BTCUSDT", "SOLUSDT"):
        snap = bundle.symbols[symbol]
        assert snap.status is SymbolStatus.OK
        expected = sim.levels(symbol)
        _assert_same(expected, dict(snap.levels), symbol)
        if len(venues) == 3:  # every venue's share summed: the whole chain's interest
            assert snap.max_pain_value == pytest.approx(expected.max_pain[1], rel=0.005)
        u1 = snap.level(Level.EM_UPPER_1SD)
        assert u1 == pytest.approx(expected.expected_move[0], rel=0.005)


async def test_a_symbol_no_venue_lists_is_not_available_not_zero(
    server: SimServer, clock: Clock
) -> None:
    source = _source(server.url, (Venue.DERIBIT, Venue.BYBIT, Venue.OKX), clock)
    try:
        bundle = await source.bundle(["BTCUSDT", "HYPEUSDT"])
    finally:
        await _close(source)
    hype = bundle.symbols["HYPEUSDT"]
    assert hype.status is SymbolStatus.MISSING
    assert all(v is None for v in hype.levels.values())
    assert hype.unavailable == (
        "not available from the chains (no listed options for HYPE on Deribit, Bybit, OKX)"
    )


@pytest.fixture
async def broken_venue() -> AsyncIterator[str]:
    """A venue host that answers 429 to everything."""

    async def refuse(_request: web.Request) -> web.Response:
        return web.json_response({"error": "slow down"}, status=429)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_a_failing_venue_is_left_out_with_one_warning_and_the_others_go_on(
    server: SimServer,
    sim: Simulator,
    clock: Clock,
    broken_venue: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clients = build_venue_clients({Venue.DERIBIT: server.url, Venue.BYBIT: broken_venue})
    source = ChainSource(
        clients, wall_clock=clock, monotonic=lambda: clock() * 1000, stale_after=1e9
    )
    caplog.set_level("WARNING", logger="gexbot")
    try:
        for _ in range(3):
            clock.advance(30)
            bundle = await source.bundle(["BTCUSDT"])
            _assert_same(sim.levels("BTCUSDT"), dict(bundle.symbols["BTCUSDT"].levels), "BTC")
    finally:
        await _close(source)
    assert caplog.text.count("Bybit chain for BTC left out") == 1  # one per episode


async def test_the_venues_are_asked_at_most_once_a_window(server: SimServer, clock: Clock) -> None:
    now = [0.0]
    source = ChainSource(
        build_venue_clients({Venue.DERIBIT: server.url}),
        wall_clock=clock,
        monotonic=lambda: now[0],
        stale_after=90,
    )
    try:
        first = await source.bundle(["BTCUSDT"])
        asked = len(server.request_log)
        now[0] = 29.0
        assert await source.bundle(["BTCUSDT"]) is first
        # chat's `/levels` in the same window: the held snapshot, no request
        assert await source.levels("BTCUSDT") is first.symbols["BTCUSDT"]
        assert len(server.request_log) == asked
        now[0] = 30.0
        await source.bundle(["BTCUSDT"])
        assert len(server.request_log) > asked
    finally:
        await _close(source)


# -- the command line, without a key ----------------------------------------------------------


@pytest.fixture
def threaded_server() -> Iterator[SimServer]:
    # A still clock at the real time (the CLI drops expiries before its own clock): the tick
    # the venues serve is the tick the test compares with.
    with conftest_threaded_server(Simulator(clock=Clock(time.time())), api_key="k") as server:
        yield server


def test_gexbot_levels_runs_on_the_chains_without_a_key(
    threaded_server: SimServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("GEXBOT_API_KEY", raising=False)
    for venue in ("DERIBIT", "BYBIT", "OKX"):
        monkeypatch.setenv(f"GEXBOT_{venue}_URL", threaded_server.url)
    assert main(["levels", "BTC", "HYPE", "--format", "json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    btc = doc["symbols"]["BTCUSDT"]
    assert btc["source"] == "chains"
    assert btc["venues"] == ["deribit", "bybit", "okx"]
    # The simulator's own levels, computed by its own code, at the tick the venues served.
    expected = threaded_server.sim.levels("BTCUSDT")
    assert btc["levels"]["hvl"] == expected.hvl
    assert btc["levels"]["call_resistance"] == expected.call_walls[0]
    assert btc["levels"]["put_support"] == expected.put_walls[0]
    assert btc["levels"]["max_pain"] == expected.max_pain[0]
    assert datetime.fromisoformat(btc["computed_at"]).tzinfo == UTC
    assert btc["net_gex"] == pytest.approx(expected.net_gex, rel=1e-5)  # USD per 1 %, not ×100
    assert set(btc["roll_off"]) <= {lv.value for lv in STRIKES}
    assert doc["symbols"]["HYPEUSDT"] is None
    assert "no listed options for HYPE" in doc["reasons"]["HYPEUSDT"]


def test_the_venue_urls_are_checked_by_their_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GEXBOT_OKX_URL", "ftp://nope")
    monkeypatch.setenv("GEXBOT_CHAIN_VENUES", "deribit,kraken")
    monkeypatch.setenv("GEXBOT_SOURCE", "vendor")
    assert main(["levels"]) != EXIT_OK
    err = capsys.readouterr().err
    for name in ("GEXBOT_OKX_URL", "GEXBOT_CHAIN_VENUES", "GEXBOT_SOURCE"):
        assert name in err


def test_the_bot_runs_a_cycle_on_the_chains_without_a_key(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "channels: {tty: {terminal: true}}\n"
        "rules: [{id: above, symbols: [BTCUSDT], when: {above: put_support}, notify: tty}]\n"
    )
    with sim_server(env=clean_env(), cwd=tmp_path) as url:
        env = {
            **clean_env(),
            "GEXBOT_DERIBIT_URL": url,
            "GEXBOT_BYBIT_URL": url,
            "GEXBOT_OKX_URL": url,
            "GEXBOT_RULES": str(rules),
            "GEXBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}",
            "GEXBOT_SYMBOLS": "BTCUSDT,HYPEUSDT",
        }
        out = gexbot("once", env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "GEXBOT_API_KEY" not in out.stderr  # no key asked for
    assert "Traceback" not in out.stderr
    with contextlib.closing(sqlite3.connect(tmp_path / "b.db")) as conn:
        stored = dict(conn.execute("SELECT symbol, status FROM snapshot_last").fetchall())
        state = conn.execute("SELECT state FROM alert_state WHERE rule_id = 'above'").fetchone()
    # The cycle ran on the chains' levels; HYPE (no listed options) is missing, not zero.
    assert stored == {"BTCUSDT": "ok", "HYPEUSDT": "missing"}
    assert state is not None
