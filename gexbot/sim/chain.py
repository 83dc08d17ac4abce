"""A synthetic option chain and the GEX levels computed from it (std dealer sign).

Formulas follow notes/gex-math.md: dollar gamma per 1% move = Γ·OI·S²·0.01 (calls +, puts −);
HVL = the zero crossing of net GEX cumulated from the lowest strike, nearest spot; walls =
strongest strikes above/below spot; 0DTE = the expiry settling at the next 08:00 UTC; max
pain = the strike minimising holders' payout; expected move = S·σ_ATM·√(1/365).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

SECONDS_PER_YEAR = 365.0 * 86400.0
#: Gamma explodes as 1/√T near expiry; a 30-minute floor keeps the last hour's 0DTE sane.
MIN_T_SECONDS = 1800.0
SETTLE_HOUR_UTC = 8


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


def _norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def bs_gamma(spot: float, strike: float, sigma: float, t_years: float) -> float:
    """Black-Scholes gamma per 1 USD of underlying (r = q = 0)."""
    vol_t = sigma * math.sqrt(t_years)
    d1 = (math.log(spot / strike) + 0.5 * vol_t * vol_t) / vol_t
    return _norm_pdf(d1) / (spot * vol_t)


def _unit_noise(*parts: object) -> float:
    """A deterministic standard-normal-ish draw from a hash (stable across runs and processes)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "big") + 0.5) / 2**64
    return math.sqrt(-2.0 * math.log(u)) * math.cos(2.0 * math.pi * ((u * 7919.0) % 1.0))


def expiries(now: datetime) -> list[datetime]:
    """Live expiries at `now`: three dailies, four Friday weeklies, three month-ends (08:00 UTC)."""
    today = now.replace(hour=SETTLE_HOUR_UTC, minute=0, second=0, microsecond=0)
    first = today if today > now else today + timedelta(days=1)
    out = {first + timedelta(days=i) for i in range(3)}
    friday = first + timedelta(days=(4 - first.weekday()) % 7)
    out.update(friday + timedelta(weeks=i) for i in range(4))
    month = first.replace(day=1)
    for _ in range(3):
        nxt = (month + timedelta(days=32)).replace(day=1)
        last_friday = nxt - timedelta(days=1)
        last_friday -= timedelta(days=(last_friday.weekday() - 4) % 7)
        if last_friday > now:
            out.add(last_friday)
        month = nxt
    return sorted(out)


def _tenor_weight(t_days: float) -> float:
    # Longer tenors hold most of the open interest; dailies are thin but sharp.
    return 0.02 + 0.25 * min(1.0, t_days / 60.0)


@dataclass(slots=True)
class Chain:
    """Open interest per (expiry, strike, call?) around a centre, plus roll-over OI moves."""

    spec: SymbolSpec
    seed: int
    centres: dict[datetime, float] = field(default_factory=dict)
    extra: dict[tuple[str, float, bool], float] = field(default_factory=dict)

    def strikes(self, centre: float) -> list[float]:
        """Listed strikes around `centre`: ±35% on the symbol's grid."""
        step = self.spec.strike_step
        lo = math.floor(centre * 0.65 / step)
        hi = math.ceil(centre * 1.35 / step)
        return [round(k * step, 10) for k in range(max(1, lo), hi + 1)]

    def oi(self, expiry: datetime, strike: float, is_call: bool, t_days: float) -> float:
        """Open interest in coins of one contract."""
        centre = self.centres.get(expiry, self.spec.spot)
        width = 0.02 + 0.06 * math.sqrt(max(t_days, 0.05) / 30.0)
        mu = 0.04 if is_call else -0.035
        x = (math.log(strike / centre) - mu) / width
        base = math.exp(-0.5 * x * x)
        step = self.spec.strike_step
        units = round(strike / step)
        if units % 10 == 0:
            base *= 3.0
        elif units % 5 == 0:
            base *= 1.8
        noise = math.exp(0.35 * _unit_noise(self.seed, self.spec.symbol, expiry, strike, is_call))
        side = 1.0 if is_call else 0.7  # put/call OI ratio ≈ 0.6 (gex-math.md §6)
        key = (expiry.isoformat(), strike, is_call)
        return self.spec.oi * _tenor_weight(t_days) * side * base * noise * 0.02 + self.extra.get(
            key, 0.0
        )

    def iv(self, strike: float, spot: float) -> float:
        """A smile with put skew around the ATM vol."""
        m = math.log(strike / spot)
        return self.spec.iv * (1.0 + 1.2 * m * m - 0.25 * m)


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


def _crossings(profile: dict[float, float]) -> list[tuple[float, float, float, str]]:
    strikes = sorted(profile)
    cum = 0.0
    prev_cum = 0.0
    out = []
    for i, k in enumerate(strikes):
        prev_cum, cum = cum, cum + profile[k]
        if i == 0 or prev_cum == 0.0 or cum == 0.0 or (prev_cum > 0) == (cum > 0):
            continue
        k0 = strikes[i - 1]
        interp = k0 + (k - k0) * (-prev_cum) / (cum - prev_cum)
        snapped = k if abs(k - interp) <= abs(interp - k0) else k0
        direction = "negative_to_positive" if cum > 0 else "positive_to_negative"
        out.append((k0, k, snapped, direction))
    return out


def _walls(profile: dict[float, float], spot: float) -> tuple[list[float], list[float]]:
    calls = sorted((k for k, g in profile.items() if k > spot and g > 0), key=lambda k: -profile[k])
    # Put support = strongest put gamma below spot (gex-math.md §5.5 `put_gamma` mode).
    puts = sorted((k for k, g in profile.items() if k < spot and g < 0), key=lambda k: profile[k])
    return calls[:3], puts[:3]


def _pad3(values: list[float]) -> tuple[float | None, float | None, float | None]:
    padded: list[float | None] = [*values, None, None, None]
    return padded[0], padded[1], padded[2]


def _ranked(profile: dict[float, float], spot: float) -> tuple[tuple[float, float], ...]:
    rows = sorted(profile.items(), key=lambda kv: (-abs(kv[1]), abs(kv[0] - spot)))
    return tuple((k, g) for k, g in rows[:10] if g != 0.0)


def compute_levels(chain: Chain, spot: float, now: datetime, *, oi_scale: float = 1.0) -> Levels:
    """All levels of `chain` at `spot` and `now` (the 0DTE expiry is the next 08:00 UTC)."""
    live = expiries(now)
    odte_expiry = live[0]
    all_profile: dict[float, float] = {}
    odte_profile: dict[float, float] = {}
    odte_oi: dict[float, tuple[float, float]] = {}
    dollar = spot * spot * 0.01 * oi_scale
    for expiry in live:
        t_sec = max(MIN_T_SECONDS, (expiry - now).total_seconds())
        t_years = t_sec / SECONDS_PER_YEAR
        t_days = t_sec / 86400.0
        centre = chain.centres.setdefault(expiry, spot)
        for k in chain.strikes(centre):
            sigma = chain.iv(k, spot)
            g = bs_gamma(spot, k, sigma, t_years) * dollar
            c_oi = chain.oi(expiry, k, True, t_days)
            p_oi = chain.oi(expiry, k, False, t_days)
            net = g * (c_oi - p_oi)
            all_profile[k] = all_profile.get(k, 0.0) + net
            if expiry == odte_expiry:
                odte_profile[k] = odte_profile.get(k, 0.0) + net
                odte_oi[k] = (c_oi, p_oi)
    crossings = _crossings(all_profile)
    hvl = min((c[2] for c in crossings), key=lambda k: abs(k - spot), default=None)
    odte_cross = _crossings(odte_profile)
    odte_hvl = min((c[2] for c in odte_cross), key=lambda k: abs(k - spot), default=None)
    calls, puts = _walls(all_profile, spot)
    ocalls, oputs = _walls(odte_profile, spot)
    atm_iv = chain.iv(spot, spot)
    move = spot * atm_iv * math.sqrt(1.0 / 365.0)
    return Levels(
        spot=spot,
        hvl=hvl,
        call_walls=_pad3(calls),
        put_walls=_pad3(puts),
        odte_hvl=odte_hvl,
        odte_call=ocalls[0] if ocalls else None,
        odte_put=oputs[0] if oputs else None,
        ranked_all=_ranked(all_profile, spot),
        ranked_odte=_ranked(odte_profile, spot),
        max_pain=_max_pain(odte_oi),
        expected_move=(spot + move, spot - move, spot + 2 * move, spot - 2 * move),
        zones=tuple(crossings),
        net_gex=sum(all_profile.values()),
        atm_iv=atm_iv,
    )


def _max_pain(oi: dict[float, tuple[float, float]]) -> tuple[float | None, float | None]:
    if not oi:
        return None, None
    best: tuple[float, float] | None = None
    for x in oi:
        pain = sum(c * max(x - k, 0.0) + p * max(k - x, 0.0) for k, (c, p) in oi.items())
        if best is None or pain < best[1]:
            best = (x, pain)
    assert best is not None  # noqa: S101 - oi is non-empty
    return best


def roll_wall(chain: Chain, levels: Levels, now: datetime, *, up: bool, calls: bool) -> None:
    """Move open interest from the current wall to a strike 1-3 steps away, as desks roll.

    The new strike gets more gamma than the old wall had, so the wall visibly moves.
    """
    walls = levels.call_walls if calls else levels.put_walls
    old = walls[0]
    if old is None:
        return
    step = chain.spec.strike_step
    live = expiries(now)
    target = live[min(len(live) - 1, 5)]  # a weekly/monthly: walls live in the longer tenors
    shift = (2 if calls == up else 1) * step
    new = round(old + (shift if up else -shift), 10)
    t_days = max(0.05, (target - now).total_seconds() / 86400.0)
    biggest = max(chain.oi(target, k, calls, t_days) for k in chain.strikes(chain.spec.spot))
    key_new = (target.isoformat(), new, calls)
    chain.extra[key_new] = chain.extra.get(key_new, 0.0) + 4.0 * biggest
    key_old = (target.isoformat(), old, calls)
    chain.extra[key_old] = chain.extra.get(key_old, 0.0) - 0.5 * chain.oi(
        target, old, calls, t_days
    )


def now_utc(epoch: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(epoch, tz=UTC)
