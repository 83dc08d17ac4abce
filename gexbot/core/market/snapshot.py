"""Frozen domain types for one poll: a snapshot per symbol and the bundle that holds them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType


class SymbolStatus(StrEnum):
    """What one poll knows about one symbol. Stored and logged by name."""

    OK = "ok"
    MISSING = "missing"  # supported, but upstream had no live cache for it
    INVALID = "invalid"  # not in the upstream's supported set
    STALE = "stale"  # served, but `computed_at` is too old (or absent) to act on


class Level(StrEnum):
    """Every level a rule can name, spelled as in rule files."""

    HVL = "hvl"
    CALL_RESISTANCE = "call_resistance"
    CALL_WALL_2 = "call_wall_2"
    CALL_WALL_3 = "call_wall_3"
    PUT_SUPPORT = "put_support"
    PUT_WALL_2 = "put_wall_2"
    PUT_WALL_3 = "put_wall_3"
    ODTE_HVL = "odte.hvl"
    ODTE_CALL_RESISTANCE = "odte.call_resistance"
    ODTE_PUT_SUPPORT = "odte.put_support"
    MAX_PAIN = "max_pain"
    EM_UPPER_1SD = "expected_move.upper_1sd"
    EM_LOWER_1SD = "expected_move.lower_1sd"
    EM_UPPER_2SD = "expected_move.upper_2sd"
    EM_LOWER_2SD = "expected_move.lower_2sd"
    ZERO_GAMMA = "zero_gamma"  # from the chains only: BackQuant serves no such level


#: The walls: the strikes a roll-off share is measured for.
WALLS = (
    Level.CALL_RESISTANCE,
    Level.CALL_WALL_2,
    Level.CALL_WALL_3,
    Level.PUT_SUPPORT,
    Level.PUT_WALL_2,
    Level.PUT_WALL_3,
)


@dataclass(frozen=True, slots=True)
class RankedStrike:
    """One row of a top-10 list: strike and signed net GEX (USD per 1% move)."""

    rank: int
    strike: float
    gex: float


@dataclass(frozen=True, slots=True)
class FlipZone:
    """A gamma-flip zone. The upstream item shape is undocumented, so every field may be None."""

    lower: float | None
    upper: float | None
    flip: float | None
    direction: str | None


@dataclass(frozen=True, slots=True)
class Candle:
    """One price candle (single-symbol endpoint only)."""

    at: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


_NO_LEVELS: Mapping[Level, float | None] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ChainFacts:
    """What a snapshot computed from the venues' chains holds beside its levels."""

    venues: tuple[str, ...]  # the venues whose books went in (`deribit`, `bybit`, `okx`)
    contracts: int  # how many, after merging the venues
    net_gex: float  # USD per 1 % move, all expiries
    settles_at: datetime  # the next 08:00 UTC expiry
    #: Per wall, the share (0–1) of its strike's gamma that settles at `settles_at`.
    roll_off: Mapping[Level, float] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Difference:
    """One level on which BackQuant and the chains disagree at a cross-check."""

    level: Level
    backquant: float | None
    chains: float | None
    checks: int  # consecutive checks this level has disagreed, this one included


@dataclass(frozen=True, slots=True)
class Agreement:
    """The last cross-check of BackQuant's `std` levels against the chains' (`both`)."""

    checked_at: datetime
    differences: tuple[Difference, ...] = ()
    after: int = 3  # consecutive checks before a difference counts as a disagreement

    @property
    def disagreeing(self) -> tuple[Difference, ...]:
        """The differences that have lasted `after` checks running."""
        return tuple(d for d in self.differences if d.checks >= self.after)


@dataclass(frozen=True, slots=True)
class SymbolSnapshot:
    """One symbol as of one poll. Levels absent from the payload read as None."""

    symbol: str
    status: SymbolStatus
    spot: float | None = None
    computed_at: datetime | None = None
    levels: Mapping[Level, float | None] = field(default_factory=lambda: _NO_LEVELS)
    max_pain_value: float | None = None
    ranked_all: tuple[RankedStrike, ...] = ()
    ranked_odte: tuple[RankedStrike, ...] = ()
    zones: tuple[FlipZone, ...] = ()
    positioning: str | None = None
    perps_price: float | None = None
    candles: tuple[Candle, ...] = ()
    chain: ChainFacts | None = None  # set when the levels were computed from the chains
    fallback: str | None = None  # why BackQuant's levels were replaced by the chains' (`both`)
    agreement: Agreement | None = None  # the last cross-check (`both`)
    unavailable: str | None = None  # why a source has no levels for it (HYPE on the chains)

    @property
    def from_chains(self) -> bool:
        """True when these levels were computed from the venues' chains, not BackQuant's."""
        return self.chain is not None

    def level(self, name: Level) -> float | None:
        """The value of a level, or None when null or not served."""
        return self.levels.get(name)

    def age_seconds(self, now: datetime) -> float | None:
        """Seconds since upstream computed this data, or None when unknown."""
        if self.computed_at is None:
            return None
        return (now - self.computed_at).total_seconds()

    @property
    def usable(self) -> bool:
        """True when rules may act on this snapshot."""
        return self.status is SymbolStatus.OK and self.spot is not None


@dataclass(frozen=True, slots=True)
class BundleSnapshot:
    """The whole universe as of one poll, in the caller's order."""

    received_at: datetime | None  # when the bot received it (our clock): ages, freshness
    symbols: Mapping[str, SymbolSnapshot]
    upstream_at: datetime | None = None  # upstream's `meta.timestamp` (its clock): /status only
    request_ids: tuple[str, ...] = ()
    api_version: str | None = None

    def by_status(self, status: SymbolStatus) -> list[str]:
        """Symbols in the given status, in request order."""
        return [s for s, snap in self.symbols.items() if snap.status is status]


@dataclass(frozen=True, slots=True)
class StressHistory:
    """`/v2/gex/stress-history` as parallel columns, oldest first (std-signed levels; any value
    may be None). Columns, not rows: 30 days at 30 s are 86,400 rows a symbol."""

    times: tuple[datetime, ...]
    spot: tuple[float | None, ...]
    hvl: tuple[float | None, ...]
    call_wall: tuple[float | None, ...]
    put_wall: tuple[float | None, ...]
    net_gex: tuple[float | None, ...]

    def __len__(self) -> int:
        return len(self.times)


class Regime(StrEnum):
    """Spot relative to the HVL: above = dealers long gamma (damping), below = amplifying."""

    ABOVE_HVL = "above HVL"
    BELOW_HVL = "below HVL"
    AT_HVL = "at HVL"
    UNKNOWN = "unknown"


def distance_pct(level: float | None, spot: float | None) -> float | None:
    """(level − spot) / spot in percent; None when either is unknown."""
    if level is None or spot is None or spot == 0:
        return None
    return (level - spot) / spot * 100.0


def regime(spot: float | None, hvl: float | None) -> Regime:
    """The gamma regime of spot against the HVL."""
    if spot is None or hvl is None:
        return Regime.UNKNOWN
    if spot > hvl:
        return Regime.ABOVE_HVL
    if spot < hvl:
        return Regime.BELOW_HVL
    return Regime.AT_HVL
