"""A symbol's history as columns: what a replay walks and a preview keeps.

Built straight from BackQuant's stress-history columns or from stored snapshots, with the gaps
a live bot would have seen already inserted as rows that are not usable. One history of 30 days
at 30 s is 86,400 rows: numpy arrays, not objects.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from gexbot.core.market.snapshot import Level, StressHistory, SymbolSnapshot
from gexbot.core.present.labels import source_name

Mask = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]


def gap_starts(times: Sequence[datetime]) -> tuple[timedelta, list[int]]:
    """The history's usual step, and the rows (by index) that follow a gap: a skip of more than
    two usual steps, which the live bot would have seen as the symbol missing one step after
    the last row."""
    steps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    # The resolution: the lower quartile of steps (a median would count the gaps in).
    usual = sorted(steps)[len(steps) // 4] if steps else 0.0
    if usual <= 0:
        return timedelta(0), []
    return timedelta(seconds=usual), [k + 1 for k, step in enumerate(steps) if step > 2 * usual]


@dataclass(frozen=True, slots=True, eq=False)
class SymbolHistory:
    """One symbol's rows, oldest first, gaps included as rows that are not usable."""

    symbol: str
    times: tuple[datetime, ...]
    usable: Mask  # rules may act on the row: served, fresh, with a spot
    spot: Floats  # NaN where absent
    levels: Mapping[Level, Floats]  # NaN where null; only the levels the history has
    #: Levels from the chains only: per wall, the share of its gamma settling next (NaN: not
    #: known), and the seconds from each row's time to that settlement.
    roll_off: Mapping[Level, Floats]
    settles_in: Floats
    #: Per row, where the levels came from when not BackQuant (`Deribit + Bybit chains`).
    sources: tuple[str | None, ...]

    def __len__(self) -> int:
        return len(self.times)

    @classmethod
    def of_snapshots(cls, symbol: str, snaps: Sequence[SymbolSnapshot]) -> SymbolHistory:
        """Stored (or scripted) snapshots; those without `computed_at` are left out."""
        rows = [s for s in snaps if s.computed_at is not None]
        names = dict.fromkeys(lv for r in rows for lv in r.levels)
        walls = dict.fromkeys(lv for r in rows if r.chain is not None for lv in r.chain.roll_off)
        return cls._with_gaps(
            symbol,
            [r.computed_at for r in rows],  # type: ignore[misc]  # filtered above
            np.array([r.usable for r in rows], dtype=np.bool_),
            np.array([r.spot for r in rows], dtype=np.float64),
            {lv: np.array([r.levels.get(lv) for r in rows], dtype=np.float64) for lv in names},
            {
                lv: np.array(
                    [r.chain.roll_off.get(lv) if r.chain else None for r in rows],
                    dtype=np.float64,
                )
                for lv in walls
            },
            np.array(
                [
                    (r.chain.settles_at - r.computed_at).total_seconds()
                    if r.chain is not None and r.computed_at is not None
                    else None
                    for r in rows
                ],
                dtype=np.float64,
            ),
            [source_name(r) if r.chain is not None else None for r in rows],
        )

    @classmethod
    def of_stress(cls, symbol: str, stress: StressHistory) -> SymbolHistory:
        """BackQuant's stress history: call wall read as call resistance, put wall as support;
        a row without spot is the symbol missing."""
        spot = np.array(stress.spot, dtype=np.float64)
        return cls._with_gaps(
            symbol,
            list(stress.times),
            ~np.isnan(spot),
            spot,
            {
                Level.HVL: np.array(stress.hvl, dtype=np.float64),
                Level.CALL_RESISTANCE: np.array(stress.call_wall, dtype=np.float64),
                Level.PUT_SUPPORT: np.array(stress.put_wall, dtype=np.float64),
            },
            {},  # BackQuant's history has no chain: a roll-off is unknown there
            np.full(len(spot), np.nan),
            [None] * len(spot),
        )

    @classmethod
    def _with_gaps(  # noqa: PLR0917 - one column each, as the fields
        cls,
        symbol: str,
        times: list[datetime],
        usable: Mask,
        spot: Floats,
        levels: dict[Level, Floats],
        roll_off: dict[Level, Floats],
        settles_in: Floats,
        sources: list[str | None],
    ) -> SymbolHistory:
        usual, starts = gap_starts(times)
        if starts:
            for k in reversed(starts):
                times.insert(k, times[k - 1] + usual)
            usable = np.insert(usable, starts, False)
            spot = np.insert(spot, starts, np.nan)
            levels = {lv: np.insert(col, starts, np.nan) for lv, col in levels.items()}
            roll_off = {lv: np.insert(col, starts, np.nan) for lv, col in roll_off.items()}
            settles_in = np.insert(settles_in, starts, np.nan)
            for k in reversed(starts):
                sources.insert(k, None)
        return cls(symbol, tuple(times), usable, spot, levels, roll_off, settles_in, tuple(sources))


def histories(series: Mapping[str, Sequence[SymbolSnapshot]]) -> dict[str, SymbolHistory]:
    """Each symbol's snapshots as a history."""
    return {sym: SymbolHistory.of_snapshots(sym, snaps) for sym, snaps in series.items()}
