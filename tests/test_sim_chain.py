"""The simulator's chain: levels computed on arrays agree with a contract-by-contract reference,
and a roll moves open interest without creating any."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from gexbot.sim.chain import (
    MIN_T_SECONDS,
    SECONDS_PER_YEAR,
    SPECS,
    Chain,
    compute_levels,
    expiries,
    now_utc,
    roll_wall,
)
from gexbot.sim.market import SimConfig, Simulator
from tests.conftest import START, Clock


def _reference_profile(chain: Chain, spot: float, now: datetime) -> dict[float, float]:
    """Net GEX per strike the slow way: every contract on its own, scalar math only."""
    out: dict[float, float] = {}
    step = chain.spec.strike_step
    for expiry in expiries(now):
        series = chain.series[expiry]
        t_sec = max(MIN_T_SECONDS, (expiry - now).total_seconds())
        t_years, t_days = t_sec / SECONDS_PER_YEAR, t_sec / 86400.0
        for i, strike in enumerate(series.strikes.tolist()):
            m = math.log(strike / spot)
            sigma = chain.spec.iv * (1.0 + 1.2 * m * m - 0.25 * m)
            vol_t = sigma * math.sqrt(t_years)
            d1 = (math.log(spot / strike) + 0.5 * vol_t * vol_t) / vol_t
            gamma = math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi) / (spot * vol_t)
            calls = chain.open_interest_at(expiry, t_days, 0, i)
            puts = chain.open_interest_at(expiry, t_days, 1, i)
            key = round(round(strike / step) * step, 10)
            out[key] = out.get(key, 0.0) + gamma * (calls - puts) * spot * spot * 0.01
    return out


@pytest.mark.parametrize("symbol", list(SPECS))
def test_levels_match_a_contract_by_contract_reference(symbol: str) -> None:
    chain = Chain(SPECS[symbol], seed=5)
    now = now_utc(START)
    spot = SPECS[symbol].spot * 1.01
    levels = compute_levels(chain, spot, now)
    roll_wall(chain, spot, now, up=True, calls=True)  # some rolled interest in the reference
    levels = compute_levels(chain, spot, now)
    profile = _reference_profile(chain, spot, now)
    assert levels.net_gex == pytest.approx(sum(profile.values()), rel=1e-9)
    for strike, gex in levels.ranked_all:
        assert gex == pytest.approx(profile[strike], rel=1e-9)
    above = {k: g for k, g in profile.items() if k > spot and g > 0}
    below = {k: g for k, g in profile.items() if k < spot and g < 0}
    assert levels.call_walls[0] == max(above, key=lambda k: above[k])
    assert levels.put_walls[0] == min(below, key=lambda k: below[k])
    cum, sides = 0.0, []
    for strike in sorted(profile):
        before, cum = cum, cum + profile[strike]
        if before and cum and (before > 0) != (cum > 0):
            sides.append(strike)
    assert len(levels.zones) == len(sides)


def test_a_roll_moves_interest_and_creates_none() -> None:
    chain = Chain(SPECS["BTCUSDT"], seed=1)
    now = now_utc(START)
    spot = SPECS["BTCUSDT"].spot
    before = compute_levels(chain, spot, now)
    for _ in range(50):
        roll_wall(chain, spot, now, up=True, calls=True)
    after = compute_levels(chain, spot, now)
    for series in chain.series.values():
        assert series.extra.sum(axis=1) == pytest.approx([0.0, 0.0], abs=1e-6)
    assert after.call_walls[0] != before.call_walls[0]
    # Fifty rolls in a row moved the wall, but the chain holds as much interest as before.
    assert abs(after.net_gex) < 10 * abs(before.net_gex)
    chain.relax(0.0)
    assert compute_levels(chain, spot, now) == before


def test_open_interest_never_goes_below_zero() -> None:
    # Rolls take interest from a wall while drift moves the base shape away from it: before the
    # clamp, strikes went negative (SOL's reached −42 coins). Seed 1 does within two days.
    config = SimConfig(seed=1)
    clock = Clock()
    sim = Simulator(config, clock=clock)
    lowest = {sym: 0.0 for sym in sim.states}
    for tick in range(5000):
        clock.advance(config.refresh)
        sim.advance()
        if tick % 250:
            continue
        now = now_utc(clock())
        for sym, st in sim.states.items():
            for expiry, series in st.chain.series.items():
                t_days = max(0.05, (expiry - now).total_seconds() / 86400.0)
                for row in (0, 1):
                    for i in range(len(series.strikes)):
                        oi = st.chain.open_interest_at(expiry, t_days, row, i)
                        lowest[sym] = min(lowest[sym], oi)
    assert min(lowest.values()) >= 0.0, lowest
