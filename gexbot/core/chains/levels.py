"""BackQuant's `std` levels computed from a chain, and what only a chain gives.

Gamma is Black-76 on each expiry's forward (r = q = 0); dollar gamma per 1 % move is
`Γ · OI · S² · 0.01` with calls positive and puts negative (BackQuant's `std` sign). Time is in
calendar years (crypto trades around the clock) and floored at 30 minutes: gamma grows as
1/√T, and in the last minutes before 08:00 UTC one strike would outweigh the whole chain. The
simulator uses the same floor, so its chain read back gives its own levels exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

import numpy as np

from gexbot.core.chains.contracts import Contracts, Floats
from gexbot.core.market.snapshot import (
    WALLS,
    ChainFacts,
    Level,
    RankedStrike,
    SymbolSnapshot,
    SymbolStatus,
)

SECONDS_PER_YEAR = 365.0 * 86400.0
T_FLOOR_SECONDS = 1800.0
SETTLE_HOUR_UTC = 8
#: The zero-gamma search: spot re-priced over ±20 % in this many points.
ZERO_GAMMA_SPAN = 0.20
ZERO_GAMMA_POINTS = 200


@dataclass(frozen=True, slots=True)
class ChainLevels:
    """What one chain says about one symbol: its snapshot, the levels by their rule-language
    names (`zero_gamma` among them) with the chain's own facts."""

    snapshot: SymbolSnapshot

    @property
    def facts(self) -> ChainFacts:
        """Net GEX, roll-off shares, the next settlement, the venues and the contracts."""
        assert self.snapshot.chain is not None  # noqa: S101 - chain_levels always sets it
        return self.snapshot.chain

    @property
    def zero_gamma(self) -> float | None:
        """Where total gamma, re-priced over a spot grid, changes sign."""
        return self.snapshot.level(Level.ZERO_GAMMA)

    @property
    def net_gex(self) -> float:
        """USD per 1 % move, all expiries."""
        return self.facts.net_gex

    @property
    def contracts(self) -> int:
        """How many contracts went in, once merged."""
        return self.facts.contracts


class PutWalls(StrEnum):
    """Which strikes below spot are the put walls: BackQuant's text and most vendors differ."""

    NEGATIVE = "negative"  # the most negative net GEX (most vendors, and the simulator)
    POSITIVE = "positive"  # the largest positive net GEX (BackQuant's written definition)


def black76_gamma(forward: Floats, strike: Floats, iv: Floats, t_years: Floats) -> Floats:
    """Gamma per 1 USD of underlying, element-wise (Black-76, r = 0)."""
    vol_t = iv * np.sqrt(t_years)
    d1 = (np.log(forward / strike) + 0.5 * vol_t * vol_t) / vol_t
    pdf: Floats = np.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
    return pdf / (forward * vol_t)


def next_settlement(now: datetime) -> datetime:
    """The next 08:00 UTC strictly after `now`: when the 0DTE expiry settles."""
    today = now.astimezone(UTC).replace(hour=SETTLE_HOUR_UTC, minute=0, second=0, microsecond=0)
    return today if today > now else today + timedelta(days=1)


def chain_levels(
    symbol: str,
    c: Contracts,
    *,
    spot: float,
    now: datetime,
    puts_by: PutWalls = PutWalls.NEGATIVE,
) -> ChainLevels:
    """Every level of `symbol` from its contracts at `spot` and `now` (put walls by
    `puts_by`)."""
    t_now = now.timestamp()
    t_years = np.maximum(c.expiry - t_now, T_FLOOR_SECONDS) / SECONDS_PER_YEAR
    sign = np.where(c.is_call, 1.0, -1.0)
    dollar = black76_gamma(c.forward, c.strike, c.iv, t_years) * c.oi * sign * spot * spot * 0.01
    strikes, per_strike = _by_strike(c.strike, dollar)
    settles = next_settlement(now)
    odte = np.isclose(c.expiry, settles.timestamp())
    o_strikes, o_per_strike = _by_strike(c.strike[odte], dollar[odte])
    calls, puts = walls(strikes, per_strike, spot, puts_by)
    o_calls, o_puts = walls(o_strikes, o_per_strike, spot, puts_by)
    pain_strike, pain_value = max_pain(c.strike[odte], c.oi[odte], c.is_call[odte])
    move = _expected_move(c, spot, t_now)
    levels: dict[Level, float | None] = {
        Level.HVL: hvl_strike(strikes, per_strike, spot),
        Level.CALL_RESISTANCE: _at(calls, 0),
        Level.CALL_WALL_2: _at(calls, 1),
        Level.CALL_WALL_3: _at(calls, 2),
        Level.PUT_SUPPORT: _at(puts, 0),
        Level.PUT_WALL_2: _at(puts, 1),
        Level.PUT_WALL_3: _at(puts, 2),
        Level.ODTE_HVL: hvl_strike(o_strikes, o_per_strike, spot),
        Level.ODTE_CALL_RESISTANCE: _at(o_calls, 0),
        Level.ODTE_PUT_SUPPORT: _at(o_puts, 0),
        Level.MAX_PAIN: pain_strike,
        Level.EM_UPPER_1SD: None if move is None else spot + move,
        Level.EM_LOWER_1SD: None if move is None else spot - move,
        Level.EM_UPPER_2SD: None if move is None else spot + 2 * move,
        Level.EM_LOWER_2SD: None if move is None else spot - 2 * move,
    }
    levels[Level.ZERO_GAMMA] = _zero_gamma(c, dollar_sign=sign, t_years=t_years, spot=spot)
    facts = ChainFacts(
        venues=c.venues,
        contracts=len(c),
        net_gex=float(per_strike.sum()),
        settles_at=settles,
        roll_off=MappingProxyType(_roll_off(levels, c.strike, dollar, odte)),
    )
    snapshot = SymbolSnapshot(
        symbol=symbol,
        status=SymbolStatus.OK if len(c) else SymbolStatus.MISSING,
        spot=spot,
        computed_at=now,
        levels=MappingProxyType(levels),
        max_pain_value=pain_value,
        ranked_all=_ranked(strikes, per_strike, spot),
        ranked_odte=_ranked(o_strikes, o_per_strike, spot),
        positioning="std",
        chain=facts,
    )
    return ChainLevels(snapshot)


def _by_strike(strike: Floats, values: Floats) -> tuple[Floats, Floats]:
    if len(strike) == 0:
        return np.zeros(0), np.zeros(0)
    unique, inverse = np.unique(strike, return_inverse=True)
    summed = np.bincount(inverse.reshape(-1), weights=values, minlength=len(unique))
    return unique, summed.astype(np.float64)


def hvl_strike(strikes: Floats, gex: Floats, spot: float) -> float | None:
    """The crossing of net GEX cumulated from the lowest strike that lies nearest spot, as a
    listed strike (the one nearer the interpolated zero); None without a crossing."""
    if len(strikes) < 2:
        return None
    cum = np.cumsum(gex)
    before, after = cum[:-1], cum[1:]
    # A sign change between consecutive strikes; a running sum that touches 0 exactly is not one.
    change = (before != 0) & (after != 0) & ((before > 0) != (after > 0))
    idx = np.flatnonzero(change) + 1
    if len(idx) == 0:
        return None
    k0, k1 = strikes[idx - 1], strikes[idx]
    zero = k0 + (k1 - k0) * (-cum[idx - 1]) / (cum[idx] - cum[idx - 1])
    snapped = np.where(np.abs(k1 - zero) <= np.abs(zero - k0), k1, k0)
    return float(snapped[np.argmin(np.abs(snapped - spot))])


def walls(
    strikes: Floats, gex: Floats, spot: float, puts_by: PutWalls = PutWalls.NEGATIVE
) -> tuple[list[float], list[float]]:
    """Call walls: the strikes above spot with the largest positive net GEX, by size; put
    walls: below spot, by `puts_by`."""
    calls = np.flatnonzero((strikes > spot) & (gex > 0))
    calls = calls[np.argsort(-gex[calls], kind="stable")]
    if puts_by is PutWalls.NEGATIVE:
        puts = np.flatnonzero((strikes < spot) & (gex < 0))
        puts = puts[np.argsort(gex[puts], kind="stable")]
    else:
        puts = np.flatnonzero((strikes < spot) & (gex > 0))
        puts = puts[np.argsort(-gex[puts], kind="stable")]
    return strikes[calls[:3]].tolist(), strikes[puts[:3]].tolist()


def _at(values: list[float], i: int) -> float | None:
    return values[i] if i < len(values) else None


def _ranked(strikes: Floats, gex: Floats, spot: float) -> tuple[RankedStrike, ...]:
    order = np.lexsort((np.abs(strikes - spot), -np.abs(gex)))[:10]
    return tuple(
        RankedStrike(rank=n + 1, strike=float(strikes[i]), gex=float(gex[i]))
        for n, i in enumerate(order)
        if gex[i] != 0.0
    )


def max_pain(strikes: Floats, oi: Floats, is_call: np.ndarray) -> tuple[float | None, float | None]:
    """The 0DTE strike where holders' payout is least, and that payout in USD."""
    candidates = np.unique(strikes)
    if len(candidates) == 0:
        return None, None
    diff = candidates[:, None] - strikes[None, :]
    payout = np.where(is_call, np.maximum(diff, 0.0), np.maximum(-diff, 0.0)) * oi
    pain = payout.sum(axis=1)
    best = int(np.argmin(pain))
    return float(candidates[best]), float(pain[best])


def _expected_move(c: Contracts, spot: float, t_now: float) -> float | None:
    """The 1-day 1σ move: ATM total variance interpolated between the expiries around one day
    (the nearest one alone when one side is missing), as S · σ · √(1/365)."""
    points = []
    for expiry in np.unique(c.expiry):
        rows = c.expiry == expiry
        forward = float(np.median(c.forward[rows]))
        order = np.argsort(c.strike[rows])
        ks, ivs = c.strike[rows][order], c.iv[rows][order]
        # One IV per strike (calls and puts averaged), then linear in strike at the forward.
        uk, inv = np.unique(ks, return_inverse=True)
        iv_k = np.bincount(inv, weights=ivs) / np.bincount(inv)
        atm = float(np.interp(forward, uk, iv_k))
        t = max(expiry - t_now, T_FLOOR_SECONDS) / SECONDS_PER_YEAR
        points.append((t, atm * atm * t))
    if not points:
        return None
    points.sort()
    one_day = 1.0 / 365.0
    ts = np.array([p[0] for p in points])
    ws = np.array([p[1] for p in points])
    if one_day <= ts[0]:
        sigma = math.sqrt(ws[0] / ts[0])
    elif one_day >= ts[-1]:
        sigma = math.sqrt(ws[-1] / ts[-1])
    else:
        sigma = math.sqrt(float(np.interp(one_day, ts, ws)) / one_day)
    return spot * sigma * math.sqrt(one_day)


def _zero_gamma(c: Contracts, *, dollar_sign: Floats, t_years: Floats, spot: float) -> float | None:
    """Spot re-priced over a grid, each contract's IV held and its forward moved with spot:
    where total dollar gamma changes sign, nearest spot (linear between grid points).

    Black-76 gamma written for the grid: with the forward at F·g/S, d1 = α + β·ln(g/S) where
    α = ln(F/K)/σ√T + σ√T/2 and β = 1/σ√T, and gamma·g² = φ(d1)·g·S/(F·σ√T). So a grid point
    costs one multiply-add and one exp per contract, and the sum over contracts is one
    matrix-vector product."""
    if len(c) == 0:
        return None
    grid = spot * np.linspace(1 - ZERO_GAMMA_SPAN, 1 + ZERO_GAMMA_SPAN, ZERO_GAMMA_POINTS)
    vol_t = c.iv * np.sqrt(t_years)
    alpha = np.log(c.forward / c.strike) / vol_t + 0.5 * vol_t
    beta = 1.0 / vol_t
    weight = c.oi * dollar_sign / (c.forward * vol_t)
    # float32 for the grid × contracts block: half the memory traffic, and its 7 digits put
    # the zero far closer than the grid's 0.2 % steps (a test holds it to the float64 sum).
    d1 = alpha.astype(np.float32)[None, :] + (
        np.log(grid / spot).astype(np.float32)[:, None] * beta.astype(np.float32)[None, :]
    )
    np.multiply(d1, d1, out=d1)
    np.multiply(d1, np.float32(-0.5), out=d1)
    np.exp(d1, out=d1)
    total = (d1 @ weight.astype(np.float32)).astype(np.float64) * grid * spot * 0.01
    total /= math.sqrt(2.0 * math.pi)
    # Opposite signs only: far from every strike gamma is 0 (underflow), which is no flip.
    change = np.flatnonzero(total[:-1] * total[1:] < 0)
    if len(change) == 0:
        return None
    a, b = grid[change], grid[change + 1]
    ga, gb = total[change], total[change + 1]
    zeros = a + (b - a) * (-ga) / (gb - ga)
    return float(zeros[np.argmin(np.abs(zeros - spot))])


def _roll_off(
    levels: dict[Level, float | None], strike: Floats, dollar: Floats, odte: np.ndarray
) -> dict[Level, float]:
    out: dict[Level, float] = {}
    for level in WALLS:
        at = levels[level]
        if at is None:
            continue
        here = np.isclose(strike, at)
        total = float(np.abs(dollar[here]).sum())
        if total > 0:
            out[level] = float(np.abs(dollar[here & odte]).sum()) / total
    return out
