"""What a levels table shows for one symbol: rows, regime and age (pure; renderers format it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gexbot.core.snapshot import Level, SymbolSnapshot, SymbolStatus

#: Display order and labels, as a desk reads them top-down.
DISPLAY: tuple[tuple[Level, str], ...] = (
    (Level.CALL_WALL_3, "Call wall 3"),
    (Level.CALL_WALL_2, "Call wall 2"),
    (Level.CALL_RESISTANCE, "Call resistance"),
    (Level.HVL, "HVL"),
    (Level.PUT_SUPPORT, "Put support"),
    (Level.PUT_WALL_2, "Put wall 2"),
    (Level.PUT_WALL_3, "Put wall 3"),
    (Level.ODTE_CALL_RESISTANCE, "0DTE call resistance"),
    (Level.ODTE_HVL, "0DTE HVL"),
    (Level.ODTE_PUT_SUPPORT, "0DTE put support"),
    (Level.MAX_PAIN, "Max pain (0DTE)"),
    (Level.EM_UPPER_1SD, "Expected move +1σ"),
    (Level.EM_LOWER_1SD, "Expected move −1σ"),
    (Level.EM_UPPER_2SD, "Expected move +2σ"),
    (Level.EM_LOWER_2SD, "Expected move −2σ"),
)


class Regime(StrEnum):
    """Spot relative to the HVL: above = dealers long gamma (damping), below = amplifying."""

    ABOVE_HVL = "above HVL"
    BELOW_HVL = "below HVL"
    AT_HVL = "at HVL"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class LevelRow:
    """One level: its label, value and signed distance from spot in percent."""

    level: Level
    label: str
    value: float
    distance_pct: float | None


@dataclass(frozen=True, slots=True)
class LevelsView:
    """Everything a levels table shows for one symbol."""

    symbol: str
    status: SymbolStatus
    spot: float | None
    regime: Regime
    age_seconds: float | None
    rows: tuple[LevelRow, ...]


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


def levels_view(snap: SymbolSnapshot, now: datetime) -> LevelsView:
    """The table content of one snapshot as a price ladder, highest first.

    Null levels are left out rather than shown as 0.
    """
    rows = tuple(
        sorted(
            (
                LevelRow(level, label, value, distance_pct(value, snap.spot))
                for level, label in DISPLAY
                if (value := snap.level(level)) is not None
            ),
            key=lambda r: -r.value,
        )
    )
    return LevelsView(
        symbol=snap.symbol,
        status=snap.status,
        spot=snap.spot,
        regime=regime(snap.spot, snap.level(Level.HVL)),
        age_seconds=snap.age_seconds(now),
        rows=rows,
    )
