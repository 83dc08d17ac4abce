"""The cross-check of `both`: BackQuant's `std` levels against the ones computed from the same
venues' chains, level by level, with how many checks running each difference has lasted.

A wall is a strike, so any other strike is a difference (unless a tolerance is set); the HVL
and max pain are compared as a share of spot, because the two sources interpolate and snap
them differently. A level one side has and the other has not (null) is a difference too; both
null is agreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gexbot.core.market.snapshot import WALLS, Agreement, Difference, Level, SymbolSnapshot

#: What is compared: the levels both sources define the same way under `std`.
COMPARED: tuple[Level, ...] = (
    Level.HVL,
    *WALLS,
    Level.ODTE_HVL,
    Level.ODTE_CALL_RESISTANCE,
    Level.ODTE_PUT_SUPPORT,
    Level.MAX_PAIN,
)
_BY_SHARE = frozenset({Level.HVL, Level.ODTE_HVL, Level.MAX_PAIN})


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far apart two values may be and still agree, in % of spot."""

    walls_pct: float = 0.0  # 0: the same strike
    levels_pct: float = 1.0  # the HVLs and max pain
    after: int = 3  # checks running before a difference is a disagreement


def differs(
    level: Level, ours: float | None, theirs: float | None, *, spot: float, tolerance: Tolerance
) -> bool:
    """True when the two values of `level` do not agree within the tolerance."""
    if ours is None or theirs is None:
        return (ours is None) != (theirs is None)
    limit = tolerance.levels_pct if level in _BY_SHARE else tolerance.walls_pct
    # A strike compared with a strike: equal to float precision is the same strike.
    return abs(ours - theirs) > max(spot * limit / 100.0, 1e-9 * abs(spot))


def cross_check(
    backquant: SymbolSnapshot,
    chains: SymbolSnapshot,
    *,
    prior: Agreement | None,
    at: datetime,
    tolerance: Tolerance,
) -> Agreement | None:
    """This check's agreement, each difference counting the checks it has lasted (from
    `prior`); None when either side has no usable data (nothing was compared, so the prior
    agreement stands)."""
    if not backquant.usable or not chains.usable or backquant.spot is None:
        return None
    running = {d.level: d.checks for d in prior.differences} if prior is not None else {}
    found = tuple(
        Difference(level, b, c, running.get(level, 0) + 1)
        for level in COMPARED
        if differs(
            level,
            b := backquant.level(level),
            c := chains.level(level),
            spot=backquant.spot,
            tolerance=tolerance,
        )
    )
    return Agreement(checked_at=at, differences=found, after=tolerance.after)
