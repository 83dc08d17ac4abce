"""Replay over columns: each rule and symbol walks its own history, jumping between the
snapshots where its status could change instead of visiting every snapshot.

Exact by construction: numpy only finds *candidate* snapshots (a superset of those where
`evaluate` would report the pair, given its status), and each candidate is decided by the
same `evaluate` and `decide` as the live bot. Between two candidates the pair's status is
known not to change (evaluate skips a pair whose observation could only be UNCHANGED), so
skipping them changes nothing. Alerts come out in the order `replay` gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from gexbot.core.alert import AlertState, AlertStatus, NotifyReason
from gexbot.core.evaluate import RuleIndex, evaluate, index_rules
from gexbot.core.events import events_for
from gexbot.core.lifecycle import decide
from gexbot.core.replay import ReplayedAlert, ReplayResult, with_gaps
from gexbot.core.rules import Condition, ConditionKind, Rule
from gexbot.core.snapshot import BundleSnapshot, Level, SymbolSnapshot

Mask = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]


@dataclass(slots=True)
class Columns:
    """One symbol's history (gaps included, as rows that are not usable) as arrays."""

    symbol: str
    times: list[datetime]
    rows: list[SymbolSnapshot]
    usable: Mask  # usable, with a spot: the rows `evaluate` can look at
    spot: Floats
    levels: dict[Level, Floats]  # NaN where null
    _bundles: dict[int, tuple[BundleSnapshot, BundleSnapshot]] = field(default_factory=dict)

    @classmethod
    def of(cls, symbol: str, timed: list[tuple[datetime, SymbolSnapshot]]) -> Columns:
        """Columns of `timed` (oldest first)."""
        rows = [snap for _, snap in timed]
        usable = np.array([r.usable and r.spot is not None for r in rows], dtype=np.bool_)
        spot = np.array([r.spot if r.spot is not None else np.nan for r in rows])
        names = {lv for r in rows for lv in r.levels}
        levels = {
            lv: np.array(
                [v if (v := r.levels.get(lv)) is not None else np.nan for r in rows],
                dtype=np.float64,
            )
            for lv in names
        }
        return cls(symbol, [at for at, _ in timed], rows, usable, spot, levels)

    def bundles(self, i: int) -> tuple[BundleSnapshot, BundleSnapshot]:
        """(the previous row, row `i`) as the one-symbol bundles `evaluate` reads; shared by
        every rule that stops at row `i`."""
        kept = self._bundles.get(i)
        if kept is None:
            sym = self.symbol
            prev = {sym: self.rows[i - 1]} if i > 0 else {}
            kept = (
                BundleSnapshot(received_at=None, symbols=MappingProxyType(prev)),
                BundleSnapshot(
                    received_at=self.times[i], symbols=MappingProxyType({sym: self.rows[i]})
                ),
            )
            self._bundles[i] = kept
        return kept

    def level(self, lv: Level | None) -> Floats:
        """A level's column (all NaN when the history never has it)."""
        if lv is None or lv not in self.levels:
            return np.full(len(self.rows), np.nan)
        return self.levels[lv]

    def rel(self, lv: Level | None) -> Floats:
        """(spot − level) / level in %, NaN where the level is null or zero (as evaluate)."""
        value = self.level(lv)
        with np.errstate(divide="ignore", invalid="ignore"):
            out: Floats = (self.spot - value) / value * 100.0
        out[(value == 0.0) | np.isnan(value)] = np.nan
        return out


#: The next row at which a pair in status `st`, last decided at row `i`, might change; None
#: when the status alone does not say (every usable row is then a candidate), and the
#: history's length when nothing left can change it.
QuietNext = Callable[[AlertStatus, int], int | None]


def _indices(mask: Mask) -> npt.NDArray[np.intp]:
    return np.flatnonzero(mask)


def _after(indices: npt.NDArray[np.intp], i: int, end: int) -> int:
    at = int(np.searchsorted(indices, i, side="right"))
    return int(indices[at]) if at < len(indices) else end


def _state_masks(cond: Condition, col: Columns) -> tuple[Mask, Mask]:
    """(true when not armed, true when armed) per row; rows with an unknown truth are
    true in the second, so both stay supersets of what they stand for."""
    spot = col.spot
    with np.errstate(invalid="ignore"):
        if cond.kind is ConditionKind.OUTSIDE and cond.band is not None:
            upper, lower = (col.level(b) for b in cond.band.bounds)
            fresh = (spot > upper) | (spot < lower)
            known = ~(np.isnan(upper) | np.isnan(lower))
            return fresh, fresh | ~known
        level = np.full(len(spot), cond.threshold) if cond.level is None else col.level(cond.level)
        if cond.kind is ConditionKind.ABOVE:
            fresh = spot > level
            return fresh, fresh | np.isnan(level)
        if cond.kind is ConditionKind.BELOW:
            fresh = spot < level
            return fresh, fresh | np.isnan(level)
        if cond.within_abs is not None:
            distance = np.abs(spot - level)
            rearm = cond.rearm_abs or 2 * cond.within_abs
            return distance <= cond.within_abs, (distance <= rearm) | np.isnan(distance)
        distance = np.abs(col.rel(cond.level))
        within = cond.within_pct or 0.0
        rearm = cond.rearm_pct or 2 * within
        return distance <= within, (distance <= rearm) | np.isnan(distance)


def _quiet_next(rule: Rule, col: Columns) -> QuietNext:
    cond = rule.condition
    end = len(col.rows)
    inactive, firing = AlertState.INACTIVE, AlertState.FIRING
    if cond.kind is ConditionKind.CROSSES:
        rel = col.rel(cond.level)
        with np.errstate(invalid="ignore"):
            # Inactive on side b, a pair is reported only once spot is clear of the dead band
            # on the other side.
            to_side = {
                1.0: _indices(col.usable & (rel < -cond.buffer_pct)),
                -1.0: _indices(col.usable & (rel > cond.buffer_pct)),
            }

        def crossing(st: AlertStatus, i: int) -> int | None:
            if st.state is not inactive or st.baseline not in to_side:
                return None
            return _after(to_side[st.baseline], i, end)

        return crossing
    if cond.kind is ConditionKind.MOVED:
        return _moved_next(cond, col)
    fresh, armed = _state_masks(cond, col)
    entering = _indices(col.usable & fresh)
    leaving = _indices(col.usable & ~armed)
    no_repeat = rule.repeat is None

    def state(st: AlertStatus, i: int) -> int | None:
        if st.state is inactive:
            return _after(entering, i, end)
        if st.state is firing and no_repeat:
            return _after(leaving, i, end)
        return None

    return state


def _moved_next(cond: Condition, col: Columns) -> QuietNext:
    value = col.level(cond.level)
    end = len(value)

    def moved(st: AlertStatus, i: int) -> int | None:
        base = st.baseline
        if st.state is not AlertState.INACTIVE or base is None:
            return None
        # evaluate's own test, in the same float arithmetic: moved by at least the limit.
        limit = cond.by_abs if cond.by_abs is not None else abs(base) * (cond.by_pct or 0) / 100
        start, width = i + 1, 256  # windows that grow: a move is usually near
        while start < end:
            stop = start + width
            with np.errstate(invalid="ignore"):
                delta = np.abs(value[start:stop] - base)
                hits = np.flatnonzero(col.usable[start:stop] & (delta > 0) & (delta >= limit))
            if len(hits):
                return start + int(hits[0])
            start, width = stop, width * 4
        return end

    return moved


def _walk(rule: Rule, index: RuleIndex, col: Columns) -> list[tuple[datetime, ReplayedAlert]]:
    """Every alert of one rule on one symbol, deciding only at its candidate rows."""
    quiet_next = _quiet_next(rule, col)
    usable = _indices(col.usable)
    end = len(col.rows)
    alerts: list[tuple[datetime, ReplayedAlert]] = []
    status: AlertStatus | None = None
    sym = col.symbol
    i = -1
    while True:
        nxt = quiet_next(status, i) if status is not None else None
        i = _after(usable, i, end) if nxt is None else nxt
        if i >= end:
            return alerts
        at = col.times[i]
        before, frame = col.bundles(i)
        statuses = {rule.id: {sym: status}} if status is not None else {}
        for obs in evaluate(index, before, frame, statuses=statuses):
            decision = decide(status, obs, at, rule)
            if decision.reason is NotifyReason.UNCHANGED or decision.status == status:
                continue
            status = decision.status
            if decision.notify:
                for event, _ in events_for([decision], index.by_id, now=at, bundle=frame):
                    alerts.append((at, ReplayedAlert(at, rule.id, sym, event.reason, event)))


def replay_columns(
    rules: Sequence[Rule], series: Mapping[str, Sequence[SymbolSnapshot]]
) -> ReplayResult:
    """What `replay(rules, frames(series))` finds, walking each rule and symbol on its own."""
    rows = {sym: with_gaps(snaps) for sym, snaps in series.items()}
    columns = {sym: Columns.of(sym, r) for sym, r in rows.items() if r}
    result = ReplayResult()
    times = [r[0][0] for r in rows.values() if r] + [r[-1][0] for r in rows.values() if r]
    if not times:
        return result
    result.start, result.end = min(times), max(times)
    result.snapshots = sum(len(r) for r in rows.values())
    index = index_rules(rules)
    # `replay` reports a snapshot's alerts in evaluate's order: condition groups, their
    # rules, then the symbols as the rule lists them (or as the history does).
    found: list[tuple[datetime, ReplayedAlert]] = []
    for _, group in index.groups:
        for rule in group:
            one = index_rules([rule])
            symbols = list(columns) if rule.symbols is None else rule.symbols
            for sym in symbols:
                if sym in columns:
                    found += _walk(rule, one, columns[sym])
    found.sort(key=lambda pair: pair[0])  # stable: the order above within one snapshot
    result.alerts = [alert for _, alert in found]
    return result
