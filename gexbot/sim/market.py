"""The simulated market: spot walks, open interest rolls, refresh ticks and scripted faults.

State advances in refresh ticks (`refresh` seconds, default 30 as upstream documents), so every
poll between two ticks sees the same `computed_at`, as with the real cache. The path depends
only on the seed and the tick count, never on when requests arrive.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from gexbot.sim.chain import (
    SPECS,
    Chain,
    Levels,
    ListedOption,
    compute_levels,
    listed_options,
    now_utc,
    roll_wall,
)

#: Stationary spread of spot around its anchor; keeps the walk on the strike grid.
REVERSION_STD = 0.04
HISTORY_DAYS = 30
#: Market-seconds over which open interest re-centres on spot (see `Chain.drift`).
DRIFT_TIME = 12 * 3600.0


class FaultKind(StrEnum):
    """Ways the simulator can misbehave on purpose."""

    HTTP_ERROR = "http_error"  # an error envelope with `status` and `code`
    BAD_JSON = "bad_json"  # a 200 whose body is not JSON
    TRUNCATED = "truncated"  # a 200 whose JSON is cut off half-way
    WRONG_SHAPE = "wrong_shape"  # a 200 with a JSON body that is not an envelope
    SUCCESS_FALSE = "success_false"  # a 200 carrying `success: false`
    DISCONNECT = "disconnect"  # the connection is closed without a response


#: `error.code` by HTTP status (backquant-v2.md §9).
ERROR_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    # Assumed: the code table (backquant-v2.md §9) has no 405 row; the status name is likeliest.
    405: "METHOD_NOT_ALLOWED",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    502: "UPSTREAM_ERROR",
    503: "UPSTREAM_ERROR",
    504: "UPSTREAM_ERROR",
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected misbehaviour, served to the next `count` API requests."""

    kind: FaultKind = FaultKind.HTTP_ERROR
    status: int = 503
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    count: int = 1

    @property
    def error_code(self) -> str:
        """The envelope's `error.code` for an HTTP error fault."""
        return self.code or ERROR_CODES.get(self.status, "INTERNAL_ERROR")


@dataclass(slots=True)
class SymbolState:
    """One symbol's live state in the simulator."""

    chain: Chain
    spot: float
    anchor: float
    overrides: dict[str, float | None] = field(default_factory=dict)
    missing: bool = False
    stale_age: float | None = None
    ticks: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=20_000))
    history: list[tuple[float, float, Levels]] = field(default_factory=list)
    cached: tuple[int, Levels] | None = None


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Knobs of the simulator (CLI flags of `gexbot sim-server`)."""

    seed: int = 0
    refresh: float = 30.0  # seconds between upstream cache writes
    speed: float = 1.0  # market activity multiplier: volatility and OI rolls run this much faster
    walk: bool = True  # False freezes spot unless a scenario sets it
    roll_every: float = 4 * 3600.0  # mean market-seconds between wall rolls per symbol
    history_step: float = 300.0  # resolution of the simulated past (stress history, candles)
    symbols: tuple[str, ...] = tuple(SPECS)
    #: The published schema pins `meta.version` to "2.0"; live responses say "2.6"/"2.7".
    api_version: str = "2.0"


#: The demo's fast market: a refresh every 2 s and 1000x market activity. With this seed an HVL
#: cross, an approach to call resistance and a wall roll all happen within the first minute
#: (tests/test_sim.py holds it to that).
DEMO_CONFIG = SimConfig(seed=11, refresh=2.0, speed=1000.0)


class Simulator:
    """A deterministic market for the four BackQuant symbols, advanced by refresh ticks."""

    def __init__(self, config: SimConfig | None = None, *, clock: Callable[[], float]) -> None:
        self.config = config or SimConfig()
        self._clock = clock
        self._rng = random.Random(self.config.seed)
        self.origin = math.floor(clock() / self.config.refresh) * self.config.refresh
        self.tick = 0
        self.supported: list[str] = list(self.config.symbols)
        self.states: dict[str, SymbolState] = {}
        for sym in self.config.symbols:
            spec = SPECS[sym]
            self.states[sym] = SymbolState(
                chain=Chain(spec, seed=self.config.seed), spot=spec.spot, anchor=spec.spot
            )
        self.faults: deque[Fault] = deque()
        self.venues_down: set[str] = set()  # venues whose public endpoints answer 503
        self.delay = 0.0
        self.forbidden = False
        self._steps: dict[int, list[Callable[[Simulator], None]]] = {}
        self._past: dict[str, list[tuple[float, float, Levels]]] = {}
        self._apply_steps(0)

    @property
    def api_version(self) -> str:
        """The `meta.version` this simulator serves."""
        return self.config.api_version

    # -- time -----------------------------------------------------------------------------

    def now(self) -> float:
        """The simulator's clock (epoch seconds)."""
        return self._clock()

    def advance(self) -> None:
        """Step the market up to the latest refresh tick at or before now."""
        target = int((self._clock() - self.origin) // self.config.refresh)
        while self.tick < target:
            self.tick += 1
            self._step()
            self._apply_steps(self.tick)

    def computed_at(self, symbol: str) -> float:
        """Epoch seconds of the symbol's last cache write."""
        stamp = self.origin + self.tick * self.config.refresh
        age = self.states[symbol].stale_age
        return stamp if age is None else min(stamp, self._clock() - age)

    # -- market dynamics ------------------------------------------------------------------

    def _step(self) -> None:
        dt_years = self.config.refresh * self.config.speed / (365.0 * 86400.0)
        t = self.origin + self.tick * self.config.refresh
        rate = self.config.refresh * self.config.speed / self.config.roll_every
        # Relaxation and drift are slow next to a tick at normal speed: apply them every few
        # ticks (fixed by the tick count, so the path stays independent of requests).
        every = max(1, math.floor(0.01 * DRIFT_TIME / (self.config.refresh * self.config.speed)))
        market_dt = every * self.config.refresh * self.config.speed
        reshape = self.tick % every == 0
        relax = math.exp(-market_dt / self.config.roll_every)
        drift = math.exp(-market_dt / DRIFT_TIME)
        for sym, st in self.states.items():
            spec = st.chain.spec
            z = self._rng.gauss(0.0, 1.0)
            roll_draw = self._rng.random()
            direction = self._rng.random()
            if not self.config.walk:
                continue
            theta = spec.iv**2 / (2.0 * REVERSION_STD**2)
            x = math.log(st.spot / st.anchor)
            x += -theta * x * dt_years + spec.iv * math.sqrt(dt_years) * z
            st.spot = _round_to(st.anchor * math.exp(x), spec.tick)
            # Rolled interest fades with the roll time scale, so rolls move walls without
            # piling up: the chain stays near its base shape for as long as the simulator runs.
            if reshape:
                st.chain.relax(relax)
                st.chain.drift(st.spot, drift)
            if roll_draw < rate:
                roll_wall(
                    st.chain,
                    st.spot,
                    now_utc(t),
                    up=direction < 0.5,
                    calls=direction < 0.25 or direction >= 0.75,
                )
                st.cached = None
            st.ticks.append((t, st.spot))
            if not st.history or t - st.history[-1][0] >= self.config.history_step:
                st.history.append((t, st.spot, self.levels(sym)))

    def listed(self, symbol: str) -> tuple[list[ListedOption], float, float]:
        """The contracts behind `levels(symbol)` at the current tick, its spot and the tick's
        time: what the simulated venues publish."""
        st = self.states[symbol]
        at = self.origin + self.tick * self.config.refresh
        return listed_options(st.chain, st.spot, now_utc(at)), st.spot, at

    def levels(self, symbol: str) -> Levels:
        """The symbol's levels at the current tick (computed once per tick), with overrides."""
        st = self.states[symbol]
        if st.cached is None or st.cached[0] != self.tick:
            at = now_utc(self.origin + self.tick * self.config.refresh)
            st.cached = (self.tick, compute_levels(st.chain, st.spot, at))
        return _apply_overrides(st.cached[1], st.overrides)

    # -- scripting --------------------------------------------------------------------------

    def at_step(self, step: int, action: Callable[[Simulator], None]) -> None:
        """Run `action` when the market reaches refresh tick `step` (now, if already past)."""
        if step <= self.tick:
            action(self)
            return
        self._steps.setdefault(step, []).append(action)

    def _apply_steps(self, tick: int) -> None:
        for action in self._steps.pop(tick, []):
            action(self)

    def set_spot(self, symbol: str, spot: float) -> None:
        """Move spot (a scripted jump; the walk continues from there when enabled)."""
        st = self.states[symbol]
        st.spot = spot
        st.cached = None

    def set_levels(self, symbol: str, **levels: float | None) -> None:
        """Pin levels by rule name (`hvl`, `call_resistance`, `odte.hvl`…); None makes one null."""
        unknown = set(levels) - OVERRIDABLE
        if unknown:
            raise ValueError(f"unknown level(s) {sorted(unknown)}; known: {sorted(OVERRIDABLE)}")
        self.states[symbol].overrides.update(levels)

    def clear_levels(self, symbol: str) -> None:
        """Back to computed levels."""
        self.states[symbol].overrides.clear()

    def set_missing(self, symbol: str, missing: bool = True) -> None:
        """Make a symbol cold (served as null + `missing`) or serve it again."""
        self.states[symbol].missing = missing

    def set_supported(self, symbol: str, supported: bool = True) -> None:
        """Drop a symbol from (or return it to) the supported set, so it reads as invalid."""
        if supported and symbol not in self.supported:
            self.supported.append(symbol)
        elif not supported and symbol in self.supported:
            self.supported.remove(symbol)

    def set_stale(self, symbol: str, age: float | None) -> None:
        """Hold `computed_at` at least `age` seconds in the past (None: fresh again)."""
        self.states[symbol].stale_age = age

    def inject(self, fault: Fault) -> None:
        """Queue a fault for the next API request(s)."""
        self.faults.append(fault)

    def next_fault(self) -> Fault | None:
        """Take one use of the first queued fault."""
        if not self.faults:
            return None
        fault = self.faults[0]
        if fault.count <= 1:
            self.faults.popleft()
        else:
            self.faults[0] = replace(fault, count=fault.count - 1)
        return fault

    def request_id(self) -> str:
        """A `req_…` trace id (the format every documented example uses)."""
        return f"req_{self._rng.getrandbits(128):032x}"

    # -- the past -------------------------------------------------------------------------

    def past(self, symbol: str) -> list[tuple[float, float, Levels]]:
        """(epoch, spot, levels) every `history_step` for the last 30 days, oldest first.

        Before the simulator started, spot follows a calm mean-reverting walk ending at the
        starting spot, and levels come from a table computed once over a spot grid (levels are
        strikes, so the nearest grid point is exact enough). After the start, the live record.
        """
        if symbol not in self._past:
            self._past[symbol] = self._backfill(symbol)
        cutoff = self._clock() - HISTORY_DAYS * 86400.0
        live = self.states[symbol].history
        return [row for row in (*self._past[symbol], *live) if row[0] >= cutoff]

    def _backfill(self, symbol: str) -> list[tuple[float, float, Levels]]:
        st = self.states[symbol]
        spec = st.chain.spec
        rng = random.Random(f"{self.config.seed}:{symbol}:past")
        step = self.config.history_step
        n = int(HISTORY_DAYS * 86400.0 / step)
        dt = step / (365.0 * 86400.0)
        theta = spec.iv**2 / (2.0 * REVERSION_STD**2)
        xs = [rng.gauss(0.0, REVERSION_STD)]
        for _ in range(n - 1):
            xs.append(xs[-1] - theta * xs[-1] * dt + spec.iv * math.sqrt(dt) * rng.gauss(0, 1))
        shift = -xs[-1]  # end exactly at the starting spot
        grid = _level_grid(Chain(spec, seed=self.config.seed), spec.spot, now_utc(self.origin))
        rows = []
        for i, x in enumerate(xs):
            t = self.origin - (n - i) * step
            spot = _round_to(spec.spot * math.exp(x + shift), spec.tick)
            nearest = min(grid, key=lambda g: abs(g[0] - spot))[1]
            rows.append((t, spot, replace(nearest, spot=spot)))
        return rows

    def recent_prices(self, symbol: str) -> list[tuple[float, float]]:
        """(epoch, spot) pairs, oldest first: the past at `history_step`, then every tick."""
        past = [(t, s) for t, s, _ in self.past(symbol) if t < self.origin]
        return [*past, *self.states[symbol].ticks]


OVERRIDABLE = frozenset(
    {
        "hvl",
        "call_resistance",
        "call_wall_2",
        "call_wall_3",
        "put_support",
        "put_wall_2",
        "put_wall_3",
        "odte.hvl",
        "odte.call_resistance",
        "odte.put_support",
        "max_pain",
        "expected_move.upper_1sd",
        "expected_move.lower_1sd",
        "expected_move.upper_2sd",
        "expected_move.lower_2sd",
    }
)


def _apply_overrides(lv: Levels, ov: dict[str, Any]) -> Levels:
    if not ov:
        return lv
    cw = list(lv.call_walls)
    pw = list(lv.put_walls)
    for i, name in enumerate(("call_resistance", "call_wall_2", "call_wall_3")):
        if name in ov:
            cw[i] = ov[name]
    for i, name in enumerate(("put_support", "put_wall_2", "put_wall_3")):
        if name in ov:
            pw[i] = ov[name]
    em = list(lv.expected_move)
    for i, name in enumerate(("upper_1sd", "lower_1sd", "upper_2sd", "lower_2sd")):
        key = f"expected_move.{name}"
        if key in ov:
            em[i] = ov[key]
    return replace(
        lv,
        hvl=ov.get("hvl", lv.hvl),
        call_walls=(cw[0], cw[1], cw[2]),
        put_walls=(pw[0], pw[1], pw[2]),
        odte_hvl=ov.get("odte.hvl", lv.odte_hvl),
        odte_call=ov.get("odte.call_resistance", lv.odte_call),
        odte_put=ov.get("odte.put_support", lv.odte_put),
        max_pain=(ov["max_pain"], lv.max_pain[1]) if "max_pain" in ov else lv.max_pain,
        expected_move=(em[0], em[1], em[2], em[3]),
    )


def _level_grid(chain: Chain, centre: float, at: datetime) -> list[tuple[float, Levels]]:
    # A series is listed around the spot it is first seen at: list them around the centre, as
    # the live chain is, before visiting the grid (whose first point is 16% below it).
    compute_levels(chain, centre, at)
    return [
        (centre * m, compute_levels(chain, centre * m, at))
        for m in (0.84 + 0.02 * i for i in range(17))
    ]


def _round_to(value: float, tick: float) -> float:
    decimals = max(0, -math.floor(math.log10(tick)))
    return round(round(value / tick) * tick, decimals)
