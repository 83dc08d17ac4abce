"""A synthetic option chain and the GEX levels computed from it (std dealer sign).

Formulas follow notes/gex-math.md: dollar gamma per 1% move = Γ·OI·S²·0.01 (calls +, puts −);
HVL = the zero crossing of net GEX cumulated from the lowest strike, nearest spot; walls =
strongest strikes above/below spot; 0DTE = the expiry settling at the next 08:00 UTC; max
pain = the strike minimising holders' payout; expected move = S·σ_ATM·√(1/365).

Open interest is a base shape per expiry (anchored at the spot when the expiry was first
seen, as real chains are) plus `extra`: interest that desks rolled from one strike to another.
A roll moves interest, it never creates it, and `relax` lets rolled interest drift back to the
base shape, so the chain is stationary however long the simulator runs (see `roll_wall`).
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

SECONDS_PER_YEAR = 365.0 * 86400.0
#: Gamma explodes as 1/√T near expiry; a 30-minute floor keeps the last hour's 0DTE sane.
MIN_T_SECONDS = 1800.0
SETTLE_HOUR_UTC = 8
#: Share of the wall's open interest that one roll moves to the new strike. More than half,
#: so the new strike outweighs what is left behind and the wall visibly moves.
ROLL_FRACTION = 0.6
#: Where call and put interest cluster, in log-moneyness from the centre, and their sizes
#: (put/call OI ratio ≈ 0.6, gex-math.md §6).
MU = np.array([[0.04], [-0.035]])
SIDE = np.array([[1.0], [0.7]])

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """Static shape of one symbol's market."""

    symbol: str
    spot: float
    strike_step: float
    iv: float  # ATM implied vol, annualised
    oi: float  # open interest scale in coins
    tick: float  # spot price tick


SPECS: dict[str, SymbolSpec] = {
    s.symbol: s
    for s in (
        SymbolSpec("BTCUSDT", 81_000.0, 1_000.0, 0.45, 300_000.0, 0.1),
        SymbolSpec("ETHUSDT", 3_100.0, 50.0, 0.60, 2_500_000.0, 0.01),
        SymbolSpec("SOLUSDT", 180.0, 5.0, 0.70, 3_000_000.0, 0.001),
        SymbolSpec("HYPEUSDT", 38.0, 1.0, 0.85, 4_000_000.0, 0.0001),
    )
}


def bs_gamma(spot: float, strike: Floats, sigma: Floats, t_years: Floats | float) -> Floats:
    """Black-Scholes gamma per 1 USD of underlying (r = q = 0), element-wise."""
    vol_t = sigma * np.sqrt(t_years)
    d1 = (np.log(spot / strike) + 0.5 * vol_t * vol_t) / vol_t
    pdf: Floats = np.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
    return pdf / (spot * vol_t)


def _unit_noise(*parts: object) -> float:
    """A deterministic standard-normal-ish draw from a hash (stable across runs and processes)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "big") + 0.5) / 2**64
    return math.sqrt(-2.0 * math.log(u)) * math.cos(2.0 * math.pi * ((u * 7919.0) % 1.0))


def expiries(now: datetime) -> list[datetime]:
    """Live expiries at `now`: three dailies, four Friday weeklies, three month-ends (08:00 UTC)."""
    today = now.replace(hour=SETTLE_HOUR_UTC, minute=0, second=0, microsecond=0)
    return list(_expiries_from(today if today > now else today + timedelta(days=1)))


@functools.lru_cache(maxsize=64)
def _expiries_from(first: datetime) -> tuple[datetime, ...]:
    # Every expiry settles at 08:00, so "after now" is "from the next settlement on".
    out = {first + timedelta(days=i) for i in range(3)}
    friday = first + timedelta(days=(4 - first.weekday()) % 7)
    out.update(friday + timedelta(weeks=i) for i in range(4))
    month = first.replace(day=1)
    for _ in range(3):
        nxt = (month + timedelta(days=32)).replace(day=1)
        last_friday = nxt - timedelta(days=1)
        last_friday -= timedelta(days=(last_friday.weekday() - 4) % 7)
        if last_friday >= first:
            out.add(last_friday)
        month = nxt
    return tuple(sorted(out))


def _width(t_days: float) -> float:
    # Short tenors cluster tightly around the money; long ones spread out.
    return 0.02 + 0.06 * math.sqrt(max(t_days, 0.05) / 30.0)


def _tenor_weight(t_days: float) -> float:
    # Longer tenors hold most of the open interest; dailies are thin but sharp.
    return 0.02 + 0.25 * min(1.0, t_days / 60.0)


@dataclass(slots=True)
class Series:
    """One expiry's listed strikes and the parts of its open interest that never change."""

    first_unit: int  # the lowest listed strike, in strike steps
    strikes: Floats
    log_strikes: Floats
    centre: float  # ln of the spot the interest clusters around
    shape: Floats  # round-number multiplier × call noise (row 0) and put noise (row 1)
    extra: Floats  # rolled interest in coins, calls (row 0) and puts (row 1)

    def index(self, strike: float, step: float) -> int | None:
        """The column of `strike`, or None when this expiry does not list it."""
        i = round(strike / step) - self.first_unit
        return i if 0 <= i < len(self.strikes) else None


@dataclass(slots=True)
class Chain:
    """Open interest per (expiry, strike, call?) around a centre, plus rolled interest."""

    spec: SymbolSpec
    seed: int
    series: dict[datetime, Series] = field(default_factory=dict)
    grid: _Grid | None = None  # the live series stacked, rebuilt when an expiry comes or goes

    def listing(self, expiry: datetime, spot: float) -> Series:
        """The expiry's series, listed around `spot` the first time it is seen."""
        found = self.series.get(expiry)
        if found is not None:
            return found
        step = self.spec.strike_step
        lo = max(1, math.floor(spot * 0.65 / step))
        hi = math.ceil(spot * 1.35 / step)
        units = np.arange(lo, hi + 1)
        strikes = np.round(units * step, 10)
        roundness = np.where(units % 10 == 0, 2.0, np.where(units % 5 == 0, 1.4, 1.0))
        noise = np.array(
            [
                [_unit_noise(self.seed, self.spec.symbol, expiry, float(k), c) for k in strikes]
                for c in (True, False)
            ]
        )
        made = Series(
            first_unit=lo,
            strikes=strikes,
            log_strikes=np.log(strikes),
            centre=math.log(spot),
            shape=roundness * np.exp(0.35 * noise),
            extra=np.zeros((2, len(strikes))),
        )
        self.series[expiry] = made
        return made

    def open_interest_at(self, expiry: datetime, t_days: float, row: int, i: int) -> float:
        """Open interest in coins of one listed strike (row 0 calls, row 1 puts)."""
        s = self.series[expiry]
        x = (float(s.log_strikes[i]) - s.centre - float(MU[row, 0])) / _width(t_days)
        base = self.spec.oi * _tenor_weight(t_days) * 0.02 * float(SIDE[row, 0])
        # Rolled-away interest (a negative extra) can outlast the base that drift moved: a
        # strike holds no interest then, never less than none.
        return max(
            0.0, base * math.exp(-0.5 * x * x) * float(s.shape[row, i]) + float(s.extra[row, i])
        )

    def iv(self, strike: Floats, spot: float) -> Floats:
        """A smile with put skew around the ATM vol."""
        m = np.log(strike / spot)
        out: Floats = self.spec.iv * (1.0 + 1.2 * m * m - 0.25 * m)
        return out

    def forget_before(self, now: datetime) -> None:
        """Drop settled expiries (their interest is gone with them)."""
        for expiry in [e for e in self.series if e <= now]:
            del self.series[expiry]

    def relax(self, factor: float) -> None:
        """Let rolled interest fade towards the base shape (`factor` of it remains)."""
        for s in self.series.values():
            s.extra *= factor

    def drift(self, spot: float, factor: float) -> None:
        """Move every expiry's centre towards `spot` (`factor` of the gap remains): old
        interest closes and new interest opens near the money, so walls are sticky for hours
        but follow spot over days, as on real chains."""
        target = math.log(spot)
        for s in self.series.values():
            s.centre = target + factor * (s.centre - target)


@dataclass(frozen=True, slots=True)
class Levels:
    """Everything `/v2/gex/levels` reports, computed from one chain at one spot."""

    spot: float
    hvl: float | None
    call_walls: tuple[float | None, float | None, float | None]
    put_walls: tuple[float | None, float | None, float | None]
    odte_hvl: float | None
    odte_call: float | None
    odte_put: float | None
    ranked_all: tuple[tuple[float, float], ...]  # (strike, gex)
    ranked_odte: tuple[tuple[float, float], ...]
    max_pain: tuple[float | None, float | None]  # (strike, value)
    expected_move: tuple[float | None, float | None, float | None, float | None]  # u1 l1 u2 l2
    zones: tuple[tuple[float, float, float, str], ...]
    net_gex: float
    atm_iv: float


def _crossings(strikes: list[float], gex: list[float]) -> list[tuple[float, float, float, str]]:
    cum = 0.0
    prev_cum = 0.0
    out = []
    for i, k in enumerate(strikes):
        prev_cum, cum = cum, cum + gex[i]
        if i == 0 or prev_cum == 0.0 or cum == 0.0 or (prev_cum > 0) == (cum > 0):
            continue
        k0 = strikes[i - 1]
        interp = k0 + (k - k0) * (-prev_cum) / (cum - prev_cum)
        snapped = k if abs(k - interp) <= abs(interp - k0) else k0
        direction = "negative_to_positive" if cum > 0 else "positive_to_negative"
        out.append((k0, k, snapped, direction))
    return out


def _walls(strikes: Floats, gex: Floats, spot: float) -> tuple[list[float], list[float]]:
    calls = np.flatnonzero((strikes > spot) & (gex > 0))
    calls = calls[np.argsort(-gex[calls], kind="stable")]
    # Put support = strongest put gamma below spot (gex-math.md §5.5 `put_gamma` mode).
    puts = np.flatnonzero((strikes < spot) & (gex < 0))
    puts = puts[np.argsort(gex[puts], kind="stable")]
    return strikes[calls[:3]].tolist(), strikes[puts[:3]].tolist()


def _pad3(values: list[float]) -> tuple[float | None, float | None, float | None]:
    padded: list[float | None] = [*values, None, None, None]
    return padded[0], padded[1], padded[2]


def _ranked(strikes: Floats, gex: Floats, spot: float) -> tuple[tuple[float, float], ...]:
    # By |gex| descending, then nearest spot; a stable sort keeps lower strikes first on ties.
    order = np.lexsort((np.abs(strikes - spot), -np.abs(gex)))[:10]
    return tuple(
        (k, g)
        for k, g in zip(strikes[order].tolist(), gex[order].tolist(), strict=True)
        if g != 0.0
    )


@dataclass(frozen=True, slots=True)
class _Grid:
    """The live expiries' series on one strike grid (expiry × side × strike), zero-padded."""

    expiries: tuple[datetime, ...]
    first_unit: int
    strikes: Floats
    log_strikes: Floats
    shape: Floats  # zero where an expiry does not list a strike
    listed: npt.NDArray[np.bool_]  # expiry × strike


def _grid(chain: Chain, live: list[datetime], spot: float) -> _Grid:
    series = [chain.listing(e, spot) for e in live]
    lo = min(sr.first_unit for sr in series)
    hi = max(sr.first_unit + len(sr.strikes) for sr in series)
    shape = np.zeros((len(series), 2, hi - lo))
    listed = np.zeros((len(series), hi - lo), dtype=bool)
    for i, sr in enumerate(series):
        at = sr.first_unit - lo
        shape[i, :, at : at + len(sr.strikes)] = sr.shape
        listed[i, at : at + len(sr.strikes)] = True
    strikes = np.round(np.arange(lo, hi) * chain.spec.strike_step, 10)
    return _Grid(tuple(live), lo, strikes, np.log(strikes), shape, listed)


@dataclass(frozen=True, slots=True)
class _Profile:
    """Net GEX per strike: all expiries (`strikes`, `gex`) and the 0DTE one (`o_…`)."""

    strikes: Floats
    gex: Floats
    o_strikes: Floats
    o_gex: Floats
    o_oi: Floats  # the 0DTE expiry's open interest: calls (row 0), puts (row 1)
    grid: _Grid
    oi: Floats  # every live expiry's open interest: expiry × side × strike (zero where unlisted)


def _profile(chain: Chain, spot: float, now: datetime) -> _Profile:
    live = expiries(now)
    chain.forget_before(now)
    grid = chain.grid
    if grid is None or grid.expiries != tuple(live):
        grid = chain.grid = _grid(chain, live, spot)
    series = [chain.series[e] for e in live]
    extra = np.zeros_like(grid.shape)
    for i, sr in enumerate(series):
        at = sr.first_unit - grid.first_unit
        extra[i, :, at : at + len(sr.strikes)] = sr.extra
    t_sec = np.maximum(MIN_T_SECONDS, [(e - now).total_seconds() for e in live])
    t_days = t_sec / 86400.0
    width = (0.02 + 0.06 * np.sqrt(np.maximum(t_days, 0.05) / 30.0))[:, None, None]
    tenor = (0.02 + 0.25 * np.minimum(1.0, t_days / 60.0))[:, None, None]
    centres = np.array([sr.centre for sr in series])[:, None, None]
    x = (grid.log_strikes - centres - MU) / width
    base = chain.spec.oi * tenor * 0.02 * SIDE * np.exp(-0.5 * x * x) * grid.shape
    oi = np.maximum(base + extra, 0.0)  # as `Chain.open_interest_at`: never below none
    sigma = chain.iv(grid.strikes, spot)
    gamma = bs_gamma(spot, grid.strikes, sigma, (t_sec / SECONDS_PER_YEAR)[:, None])
    net = gamma * (spot * spot * 0.01) * (oi[:, 0] - oi[:, 1])
    anywhere = grid.listed.any(axis=0)
    today = grid.listed[0]
    return _Profile(
        strikes=grid.strikes[anywhere],
        gex=net.sum(axis=0)[anywhere],
        o_strikes=grid.strikes[today],
        o_gex=net[0][today],
        o_oi=oi[0][:, today],
        grid=grid,
        oi=oi,
    )


@dataclass(frozen=True, slots=True)
class ListedOption:
    """One listed contract as a venue would publish it (IV from the smile at `spot`)."""

    expiry: datetime
    strike: float
    is_call: bool
    oi: float  # coin
    iv: float  # decimal


def listed_options(chain: Chain, spot: float, now: datetime) -> list[ListedOption]:
    """Every contract behind `compute_levels(chain, spot, now)`, from the same arrays: what the
    simulated venues serve, so that a chain read back gives the simulator's own levels."""
    p = _profile(chain, spot, now)
    ivs = chain.iv(p.grid.strikes, spot)
    out = []
    for e, expiry in enumerate(p.grid.expiries):
        for i in np.flatnonzero(p.grid.listed[e]).tolist():
            for side in (0, 1):
                out.append(
                    ListedOption(
                        expiry,
                        float(p.grid.strikes[i]),
                        side == 0,
                        float(p.oi[e, side, i]),
                        float(ivs[i]),
                    )
                )
    return out


def wall(chain: Chain, spot: float, now: datetime, *, calls: bool) -> float | None:
    """Call resistance (or put support) alone: what a roll needs, at a fraction of the cost."""
    p = _profile(chain, spot, now)
    found = _walls(p.strikes, p.gex, spot)[0 if calls else 1]
    return found[0] if found else None


def compute_levels(chain: Chain, spot: float, now: datetime) -> Levels:
    """All levels of `chain` at `spot` and `now` (the 0DTE expiry is the next 08:00 UTC)."""
    p = _profile(chain, spot, now)
    strikes, gex, o_strikes, o_gex = p.strikes, p.gex, p.o_strikes, p.o_gex
    crossings = _crossings(strikes.tolist(), gex.tolist())
    hvl = min((c[2] for c in crossings), key=lambda k: abs(k - spot), default=None)
    odte_cross = _crossings(o_strikes.tolist(), o_gex.tolist())
    odte_hvl = min((c[2] for c in odte_cross), key=lambda k: abs(k - spot), default=None)
    calls, puts = _walls(strikes, gex, spot)
    ocalls, oputs = _walls(o_strikes, o_gex, spot)
    atm_iv = chain.spec.iv  # the smile is ATM vol at log-moneyness 0
    move = spot * atm_iv * math.sqrt(1.0 / 365.0)
    return Levels(
        spot=spot,
        hvl=hvl,
        call_walls=_pad3(calls),
        put_walls=_pad3(puts),
        odte_hvl=odte_hvl,
        odte_call=ocalls[0] if ocalls else None,
        odte_put=oputs[0] if oputs else None,
        ranked_all=_ranked(strikes, gex, spot),
        ranked_odte=_ranked(o_strikes, o_gex, spot),
        max_pain=_max_pain(o_strikes, p.o_oi),
        expected_move=(spot + move, spot - move, spot + 2 * move, spot - 2 * move),
        zones=tuple(crossings),
        net_gex=float(gex.sum()),
        atm_iv=atm_iv,
    )


def _max_pain(strikes: Floats, oi: Floats) -> tuple[float | None, float | None]:
    if len(strikes) == 0:
        return None, None
    # pain[x] = Σ_k calls_k·max(x−k, 0) + puts_k·max(k−x, 0), for every listed x at once.
    diff = strikes[:, None] - strikes[None, :]
    pain = (np.maximum(diff, 0.0) * oi[0]).sum(axis=1) + (np.maximum(-diff, 0.0) * oi[1]).sum(
        axis=1
    )
    best = int(np.argmin(pain))
    return float(strikes[best]), float(pain[best])


def roll_wall(chain: Chain, spot: float, now: datetime, *, up: bool, calls: bool) -> None:
    """Move open interest from the current wall to a strike 1-2 steps away, as desks roll.

    In every live expiry that lists both strikes, `ROLL_FRACTION` of the old strike's interest
    moves to the new one. Interest is moved, never added: rolls made the chain explode when
    each one added a multiple of the largest interest (itself holding earlier rolls).
    """
    old = wall(chain, spot, now, calls=calls)
    if old is None:
        return
    step = chain.spec.strike_step
    shift = (2 if calls == up else 1) * step
    new = round(old + (shift if up else -shift), 10)
    row = 0 if calls else 1
    for expiry in expiries(now):
        s = chain.series.get(expiry)
        if s is None:
            continue
        i, j = s.index(old, step), s.index(new, step)
        if i is None or j is None:
            continue
        t_days = max(0.05, (expiry - now).total_seconds() / 86400.0)
        moved = ROLL_FRACTION * chain.open_interest_at(expiry, t_days, row, i)
        s.extra[row, i] -= moved
        s.extra[row, j] += moved


def now_utc(epoch: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(epoch, tz=UTC)
