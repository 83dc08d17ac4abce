"""What a levels table shows for one symbol: rows, regime and age (pure; renderers format it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gexbot.core.market.snapshot import (
    Level,
    Regime,
    SymbolSnapshot,
    SymbolStatus,
    distance_pct,
    regime,
)
from gexbot.core.present.labels import LABELS
from gexbot.core.present.provenance import agreement_line, chain_line, source_line


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
    notes: tuple[str, ...] = ()  # the source, the cross-check (when not plain BackQuant)
    unavailable: str | None = None  # why there are no levels, when the source said


def levels_view(snap: SymbolSnapshot, now: datetime) -> LevelsView:
    """The table content of one snapshot as a price ladder, highest first.

    Null levels are left out rather than shown as 0.
    """
    rows = tuple(
        sorted(
            (
                LevelRow(level, label.title(), value, distance_pct(value, snap.spot))
                for level, label in LABELS.items()
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
        notes=tuple(
            line
            for line in (
                source_line(snap) if snap.from_chains or snap.agreement else None,
                chain_line(snap),
                agreement_line(snap),
            )
            if line is not None
        ),
        unavailable=snap.unavailable,
    )
