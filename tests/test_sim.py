"""The simulated BackQuant API: schema fidelity, HTTP behaviour, market consistency, scenarios."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from gexbot.sim.chain import SPECS
from gexbot.sim.market import DEMO_CONFIG, Fault, FaultKind, SimConfig, Simulator
from gexbot.sim.scenario import ScenarioError, apply_scenario, load_scenario
from gexbot.sim.server import SimServer
from tests.conftest import START, Clock
from tests.schema import (
    ERROR_VALIDATOR,
    LEVELS_VALIDATOR,
    META_VALIDATOR,
    MULTI_VALIDATOR,
)

ALL = "BTCUSDT,ETHUSDT,SOLUSDT,HYPEUSDT"
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


async def _get(
    server: SimServer, path: str, key: str | None = "default", **params: str
) -> httpx.Response:
    headers = {} if key is None else {"X-API-Key": server.api_key if key == "default" else key}
    async with httpx.AsyncClient(base_url=server.url) as http:
        return await http.get(path, params=params, headers=headers)


# -- schema fidelity -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "include",
    ["", "ranked", "expected_move,max_pain,ranked,zones", "zones,bogus"],
)
@pytest.mark.parametrize("positioning", ["flow", "std"])
async def test_multi_responses_validate_against_the_published_schema(
    server: SimServer, sim: Simulator, include: str, positioning: str
) -> None:
    sim.set_missing("HYPEUSDT")
    resp = await _get(
        server,
        "/v2/multi/gex/levels",
        symbols=ALL + ",DOGEUSDT",
        include=include,
        positioning=positioning,
    )
    assert resp.status_code == 200
    body = resp.json()
    MULTI_VALIDATOR.validate(body)
    data = body["data"]
    assert data["missing"] == ["HYPEUSDT"]
    assert data["invalid"] == ["DOGEUSDT"]
    assert data["results"]["HYPEUSDT"] is None
    assert "DOGEUSDT" not in data["results"]
    assert data["requested"] == [*ALL.split(","), "DOGEUSDT"]


@pytest.mark.parametrize(
    "include", ["", "spot,candles", "candles,expected_move,max_pain,ranked,spot,zones"]
)
@pytest.mark.parametrize("symbol", list(SPECS))
async def test_single_levels_responses_validate_against_the_published_schema(
    server: SimServer, include: str, symbol: str
) -> None:
    resp = await _get(server, "/v2/gex/levels", symbol=symbol, include=include)
    assert resp.status_code == 200
    body = resp.json()
    LEVELS_VALIDATOR.validate(body)
    assert body["meta"]["symbol"] == symbol
    assert body["meta"]["freshness_seconds"] >= 0


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/v2/multi/gex/levels", {}, 422, "VALIDATION_ERROR"),
        ("/v2/multi/gex/levels", {"symbols": ""}, 400, "VALIDATION_ERROR"),
        (
            "/v2/multi/gex/levels",
            {"symbols": ",".join(["BTCUSDT"] * 1 + [f"S{i}" for i in range(8)])},
            400,
            "VALIDATION_ERROR",
        ),
        ("/v2/gex/levels", {"symbol": "BTC"}, 422, "VALIDATION_ERROR"),
        ("/v2/gex/levels", {"symbol": "BTCUSDT", "positioning": "x"}, 422, "VALIDATION_ERROR"),
        ("/v2/gex/stress-history", {"days": "31"}, 422, "VALIDATION_ERROR"),
        ("/v2/gex/stress-history", {"days": "x"}, 422, "VALIDATION_ERROR"),
        ("/v2/nope", {}, 404, "NOT_FOUND"),
    ],
)
async def test_bad_requests_get_the_documented_error_envelopes(
    server: SimServer, path: str, params: dict[str, str], status: int, code: str
) -> None:
    resp = await _get(server, path, **params)
    assert resp.status_code == status
    body = resp.json()
    ERROR_VALIDATOR.validate(body)
    assert body["error"]["code"] == code


async def test_cold_symbol_on_single_endpoint_is_404(server: SimServer, sim: Simulator) -> None:
    sim.set_missing("SOLUSDT")
    resp = await _get(server, "/v2/gex/levels", symbol="SOLUSDT")
    assert resp.status_code == 404
    assert resp.json()["error"]["message"] == "No data for SOLUSDT"


async def test_422_for_unknown_symbol_lists_the_enum(server: SimServer) -> None:
    body = (await _get(server, "/v2/gex/levels", symbol="btcusdt")).json()
    err = body["error"]["details"]["errors"][0]
    assert err["type"] == "literal_error"
    assert err["loc"] == ["query", "symbol"]
    assert "'HYPEUSDT'" in err["msg"]


# -- auth and rate limits -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "Missing X-API-Key header"),
        ("nope", "Invalid API key"),
        ("TEST-KEY-123456", "Invalid API key"),
    ],
)
async def test_only_the_simulators_own_key_is_accepted(
    server: SimServer, key: str | None, message: str
) -> None:
    resp = await _get(server, "/v2/multi/gex/levels", key=key, symbols="BTCUSDT")
    assert resp.status_code == 401
    body = resp.json()
    ERROR_VALIDATOR.validate(body)
    assert body["error"] == {"code": "UNAUTHORIZED", "message": message}


async def test_health_needs_no_key_and_status_does(server: SimServer, sim: Simulator) -> None:
    health = await _get(server, "/v2/health", key=None)
    assert health.status_code == 200
    assert health.json()["data"]["status"] == "ok"
    assert (await _get(server, "/v2/status", key=None)).status_code == 401
    sim.set_missing("HYPEUSDT")
    status = (await _get(server, "/v2/status")).json()
    META_VALIDATOR.validate(status["meta"])
    assert status["data"]["overall_status"] == "unavailable"
    assert status["data"]["symbols"]["BTCUSDT"]["gex"]["status"] == "healthy"


async def test_forbidden_mode_answers_403(server: SimServer, sim: Simulator) -> None:
    sim.forbidden = True
    resp = await _get(server, "/v2/multi/gex/levels", symbols="BTCUSDT")
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "FORBIDDEN"


async def test_rate_limit_headers_on_every_response_and_429_past_the_budget(
    server: SimServer, clock: Clock
) -> None:
    server.budget.per_minute = 2
    statuses = []
    for _ in range(3):
        resp = await _get(server, "/v2/multi/gex/levels", symbols="BTCUSDT")
        statuses.append(resp.status_code)
        assert all(h in resp.headers for h in RATE_HEADERS)
    assert statuses == [200, 200, 429]
    assert resp.headers["X-RateLimit-Remaining"] == "0"
    window_end = (clock.t // 60 + 1) * 60
    assert int(resp.headers["Retry-After"]) == int(window_end - clock.t)
    body = resp.json()
    assert body["error"]["details"]["limit"] == "2 per 1 minute"
    clock.advance(60)
    assert (await _get(server, "/v2/multi/gex/levels", symbols="BTCUSDT")).status_code == 200
    # A 401 carries the headers too.
    bad = await _get(server, "/v2/multi/gex/levels", key="x", symbols="BTCUSDT")
    assert "X-RateLimit-Limit" in bad.headers


async def test_computed_at_advances_on_the_refresh_cycle(server: SimServer, clock: Clock) -> None:
    async def computed() -> str:
        body = (await _get(server, "/v2/multi/gex/levels", symbols="BTCUSDT")).json()
        return str(body["data"]["results"]["BTCUSDT"]["computed_at"])

    first = await computed()
    clock.advance(10)
    assert await computed() == first  # same cache until the next refresh
    clock.advance(25)
    assert await computed() != first


# -- the market -----------------------------------------------------------------------------------


def _walk(config: SimConfig, ticks: int) -> list[dict[str, Any]]:
    clock = Clock()
    sim = Simulator(config, clock=clock)
    out = []
    for _ in range(ticks):
        clock.advance(config.refresh)
        sim.advance()
        out.append({s: sim.levels(s) for s in sim.states})
    return out


def test_same_seed_same_market_other_seed_other_market() -> None:
    config = replace(DEMO_CONFIG, refresh=30.0)
    a, b = _walk(config, 20), _walk(config, 20)
    c = _walk(replace(config, seed=config.seed + 1), 20)
    assert a == b
    assert [x["BTCUSDT"].spot for x in a] != [x["BTCUSDT"].spot for x in c]


def test_levels_stay_consistent_as_spot_walks() -> None:
    for frame in _walk(DEMO_CONFIG, 120):
        for sym, lv in frame.items():
            spot = lv.spot
            assert all(w is None or w > spot for w in lv.call_walls), sym
            assert all(w is None or w < spot for w in lv.put_walls), sym
            u1, l1, u2, l2 = lv.expected_move
            assert l2 is not None
            assert l1 is not None
            assert u1 is not None
            assert u2 is not None
            assert l2 < l1 < spot < u1 < u2
            assert abs(u1 - spot - (spot - l1)) < 1e-6 * spot
            if lv.hvl is not None:
                assert abs(lv.hvl / spot - 1) < 0.4
            ranks = [abs(g) for _, g in lv.ranked_all]
            assert ranks == sorted(ranks, reverse=True)


def test_demo_market_shows_every_starter_event_within_a_minute() -> None:
    frames = _walk(DEMO_CONFIG, int(60 / DEMO_CONFIG.refresh))
    crossed = near = rolled = False
    for before, after in itertools.pairwise(frames):
        for sym in after:
            b, a = before[sym], after[sym]
            if b.hvl and a.hvl and (b.spot > b.hvl) != (a.spot > a.hvl):
                crossed = True
            cr = a.call_walls[0]
            if cr and abs(cr - a.spot) / a.spot < 0.005:
                near = True
            if b.call_walls[0] and cr and abs(cr / b.call_walls[0] - 1) >= 0.01:
                rolled = True
    assert crossed
    assert near
    assert rolled


async def test_candles_cover_the_last_day_in_half_hours(server: SimServer) -> None:
    body = (await _get(server, "/v2/gex/levels", symbol="BTCUSDT", include="candles")).json()
    candles = body["data"]["candles"]
    assert 40 <= len(candles) <= 48
    for c in candles:
        assert c["low"] <= min(c["open"], c["close"]) <= max(c["open"], c["close"]) <= c["high"]


async def test_stress_history_spans_the_requested_days_and_ends_at_spot(
    server: SimServer, sim: Simulator
) -> None:
    body = (await _get(server, "/v2/gex/stress-history", symbol="BTCUSDT", days="30")).json()
    data = body["data"]
    n = len(data["timestamps"])
    assert n == len(data["spot_price"]) == len(data["hvl"]) == len(data["net_gex"])
    assert n >= 30 * 288 - 1
    assert data["spot_price"][-1] == pytest.approx(SPECS["BTCUSDT"].spot, rel=0.02)
    assert data["timestamps"] == sorted(data["timestamps"])


# -- scenarios ------------------------------------------------------------------------------------


def test_scenario_scripts_a_cross_at_step_3(tmp_path: Path) -> None:
    path = tmp_path / "cross.yaml"
    path.write_text(
        """
walk: false
refresh: 1
steps:
  - at: 0
    spot: {BTCUSDT: 80000}
    levels: {BTCUSDT: {hvl: 80500, call_wall_2: null}}
  - at: 3
    spot: {BTCUSDT: 81000}
  - at: 4
    missing: [HYPEUSDT]
    unsupported: [SOLUSDT]
    stale: {ETHUSDT: 600}
    error: {status: 503, count: 2}
    delay: 0.25
""",
        encoding="utf-8",
    )
    scenario = load_scenario(path)
    clock = Clock(START)
    sim = Simulator(SimConfig(refresh=1.0, walk=False), clock=clock)
    apply_scenario(sim, scenario)
    spots = []
    for _ in range(5):
        sim.advance()
        spots.append(sim.levels("BTCUSDT").spot)
        clock.advance(1)
    assert spots == [80000, 80000, 80000, 81000, 81000]
    assert sim.levels("BTCUSDT").hvl == 80500
    assert sim.levels("BTCUSDT").call_walls[1] is None
    assert sim.states["HYPEUSDT"].missing
    assert "SOLUSDT" not in sim.supported
    assert clock.t - sim.computed_at("ETHUSDT") >= 600
    assert sim.delay == 0.25
    assert sim.next_fault() == Fault(FaultKind.HTTP_ERROR, status=503, count=2)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("steps: [{at: 0, spot: {DOGEUSDT: 1}}]", "unknown symbol DOGEUSDT"),
        ("steps: [{at: 0, levels: {BTCUSDT: {hlv: 1}}}]", "unknown level"),
        ("steps: [{at: -1}]", "greater than or equal to 0"),
        ("steps: [{at: 0, teleport: true}]", "Extra inputs are not permitted"),
        ("steps: [{at: 0\n", "invalid YAML"),
    ],
)
def test_bad_scenarios_are_reported_with_the_file(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    assert says in str(info.value)


@pytest.mark.parametrize(
    ("value", "culprit", "says"),
    [
        ("spot: {BTCUSDT: 0}", "0", "greater than 0"),
        ("spot: {BTCUSDT: -5}", "-5", "greater than 0"),
        ("spot: {BTCUSDT: .inf}", ".inf", "finite number"),
        ("spot: {BTCUSDT: .nan}", ".nan", "finite number"),
        ("levels: {BTCUSDT: {hvl: .nan}}", ".nan", "finite number"),
        ("levels: {BTCUSDT: {hvl: 1e400}}", "1e400", "finite number"),
        ("stale: {ETHUSDT: .inf}", ".inf", "finite number"),
        ("error: {status: 503, retry_after: .inf}", ".inf", "finite number"),
        ("unsupported: [SOLUSDT, DOGEUSDT]", "DOGEUSDT", "unknown symbol DOGEUSDT"),
        ("levels: {BTCUSDT: {hlv: 1}}", "hlv", "unknown level hlv"),
        ("venues_down: [bybyt]", "bybyt", "'deribit', 'bybit' or 'okx'"),
    ],
)
def test_a_scenario_that_would_serve_nonsense_is_refused_at_its_place(
    tmp_path: Path, value: str, culprit: str, says: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"steps:\n  - at: 0\n    {value}\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    col = 5 + value.rindex(culprit)  # the offending value's column (an unknown name's own)
    assert str(info.value).startswith(f"{path}:3:{col}: "), str(info.value)
    assert says in str(info.value)


def test_the_backfilled_history_ends_on_the_live_levels() -> None:
    # The stress history before the simulator started joins what it serves live: at the start
    # spot, the same walls and HVL (they were from a chain listed 16% below spot).
    sim = Simulator(SimConfig(seed=3), clock=lambda: 1_790_000_000.0)
    for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "HYPEUSDT"):
        _, spot, past = [row for row in sim.past(sym) if row[0] < sim.origin][-1]
        live = sim.levels(sym)
        assert spot == pytest.approx(live.spot)
        assert past.call_walls[0] == live.call_walls[0]
        assert past.put_walls[0] == live.put_walls[0]
        assert past.hvl == pytest.approx(live.hvl, rel=1e-3)


async def test_a_scenario_takes_a_venue_down_and_back(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "venue.yaml"
    path.write_text(
        "refresh: 30\nsteps:\n  - at: 1\n    venues_down: [bybit]\n"
        "  - at: 2\n    venues_up: [bybit]\n",
        encoding="utf-8",
    )
    sim = Simulator(SimConfig(seed=3, refresh=30.0), clock=clock)
    apply_scenario(sim, load_scenario(path))
    server = SimServer(sim)
    await server.start()
    tickers = f"{server.url}/v5/market/tickers?category=option&baseCoin=BTC"
    deribit = f"{server.url}/api/v2/public/get_index_price?index_name=btc_usd"
    try:
        async with httpx.AsyncClient() as http:
            statuses = []
            for _ in range(3):
                statuses.append(
                    ((await http.get(tickers)).status_code, (await http.get(deribit)).status_code)
                )
                clock.advance(30)
    finally:
        await server.stop()
    assert statuses == [(200, 200), (503, 200), (200, 200)]  # Bybit alone, and only at step 1
