"""Replay over columns: each rule and symbol walks its own history, jumping between the
rows where its status could change instead of visiting every snapshot.

numpy finds the *candidate* rows (a superset of those where `evaluate` would report the pair,
given its status); at each candidate the pair is observed from the columns as `evaluate` would
observe it (the same observation builders and state truths) and decided by the same `decide` as
the live bot. Between two candidates the pair's status is known not to change, so skipping them
changes nothing. Alerts come out in the order `replay` gives them; a property test holds the
two paths to the same alerts.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from gexbot.core.alerts.evaluate import (
    Observation,
    Truth,
    crossing_observation,
    index_rules,
    moved_observation,
    state_observation,
    state_truths,
    undirected,
)
from gexbot.core.alerts.events import alert_event
from gexbot.core.alerts.lifecycle import decide
from gexbot.core.alerts.states import NOTIFIED, AlertState, AlertStatus, NotifyReason
from gexbot.core.language.model import Condition, ConditionKind, Rule
from gexbot.core.market.snapshot import Level
from gexbot.core.replay.history import Floats, Mask, SymbolHistory
from gexbot.core.replay.result import ReplayedAlert, ReplayResult

_INACTIVE, _PENDING, _FIRING = AlertState.INACTIVE, AlertState.PENDING, AlertState.FIRING


@dataclass(frozen=True, slots=True)
class _RowSet:
    """Rows where a mask holds, asked "which is the next after row i?" a hundred thousand
    times: the mask itself, and where each of its runs starts (far fewer than its rows)."""

    mask: Mask
    starts: list[int]

    @classmethod
    def of(cls, mask: Mask) -> _RowSet:
        begins = mask.copy()
        begins[1:] &= ~mask[:-1]
        return cls(mask, np.flatnonzero(begins).tolist())

    def has(self, i: int) -> bool:
        """True when row `i` is in the set."""
        return bool(self.mask[i])

    def after(self, i: int, end: int) -> int:
        """The first row after row `i` in the set (`end` when none)."""
        j = i + 1
        if j < end and self.mask[j]:
            return j
        # Otherwise the next row in the set begins a run.
        return _after(self.starts, i, end)


_Sides = dict[float, _RowSet]  # per side (+1 above, −1 below)


def _switches(h: SymbolHistory) -> Mask:
    """Rows where the levels' source changed from the row before, both usable (as
    `cycle.switched_source` sees it live)."""
    chains = np.array([s is not None for s in h.sources], dtype=np.bool_)
    out = np.zeros(len(chains), dtype=np.bool_)
    out[1:] = h.usable[1:] & h.usable[:-1] & (chains[1:] != chains[:-1])
    return out


def _nulls(col: Floats) -> list[float | None]:
    """A column as Python floats, None where NaN."""
    cells = col.astype(object)
    cells[np.isnan(col)] = None
    return cells.tolist()  # type: ignore[no-any-return]


@dataclass(slots=True)
class _Rows:
    """A history's columns as Python lists (None for null), for reading single rows fast and
    with the same floats `evaluate` reads from snapshots; and the candidate rows found per
    condition, shared by every rule with that condition."""

    history: SymbolHistory
    usable: list[bool]
    spot: list[float]
    levels: dict[Level, list[float | None]]
    usable_rows: _RowSet
    switches: _RowSet  # usable rows whose source differs from the usable row just before
    crossings: dict[Condition, tuple[_Sides, _Sides]] = field(default_factory=dict)
    states: dict[Condition, tuple[_RowSet, _RowSet]] = field(default_factory=dict)

    @classmethod
    def of(cls, h: SymbolHistory) -> _Rows:
        return cls(
            h,
            h.usable.tolist(),
            h.spot.tolist(),
            {lv: _nulls(col) for lv, col in h.levels.items()},
            _RowSet.of(h.usable),
            _RowSet.of(_switches(h)),
        )

    def level(self, lv: Level | None) -> list[float | None]:
        """A level's column (all None when the history never has it)."""
        if lv is None or lv not in self.levels:
            return [None] * len(self.usable)
        return self.levels[lv]

    def column(self, lv: Level | None) -> Floats:
        """A level's column as an array (NaN where null, all NaN when never served)."""
        if lv is None or lv not in self.history.levels:
            return np.full(len(self.usable), np.nan)
        return self.history.levels[lv]

    def roll_off_columns(self, lv: Level | None) -> tuple[Floats, Floats]:
        """A wall's roll-off share and the seconds to settlement, per row (NaN: unknown)."""
        h = self.history
        share = h.roll_off.get(lv) if lv is not None else None
        return (share if share is not None else np.full(len(self.usable), np.nan)), h.settles_in

    def after(self, i: int) -> int:
        """The first usable row after row `i` (the history's length when none)."""
        return self.usable_rows.after(i, len(self.usable))

    def from_time(self, at: datetime, i: int) -> int:
        """The first usable row after row `i` whose time is `at` or later."""
        j = bisect.bisect_left(self.history.times, at - _TICK)  # a tick early: a superset
        return self.after(max(i, j - 1))


_TICK = timedelta(microseconds=1)


def _after(indices: list[int], i: int, end: int) -> int:
    at = bisect.bisect_right(indices, i)
    return indices[at] if at < len(indices) else end


def _rel(rows: _Rows, lv: Level | None) -> Floats:
    """(spot − level) / level in %, NaN where the level is null or zero (as evaluate)."""
    value = rows.column(lv)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: Floats = (rows.history.spot - value) / value * 100.0
    out[(value == 0.0) | np.isnan(value)] = np.nan
    return out


#: The next row at which a pair in status `st`, last decided at row `i`, might change; None
#: when the status alone does not say (every usable row is then a candidate), and the
#: history's length when nothing left can change it.
QuietNext = Callable[[AlertStatus, int], int | None]

#: The observation `evaluate` would make of the pair at usable row `i` given its status; None
#: where `evaluate` would skip the pair.
Observe = Callable[[AlertStatus | None, int], Observation | None]


def _state_masks(cond: Condition, rows: _Rows) -> tuple[Mask, Mask]:
    """(true when not armed, true when armed) per row; rows with an unknown truth are
    true in the second, so both stay supersets of what they stand for."""
    spot = rows.history.spot
    with np.errstate(invalid="ignore"):
        if cond.kind is ConditionKind.ROLLS_OFF:
            share, settles_in = rows.roll_off_columns(cond.level)
            fresh = (
                (share * 100.0 >= (cond.share_pct or 0.0))
                & (settles_in > 0)
                & (settles_in <= (cond.within_s or 0.0))
            )
            unknown = np.isnan(share) | np.isnan(settles_in) | np.isnan(rows.column(cond.level))
            return fresh & ~unknown, fresh | unknown
        if cond.kind is ConditionKind.OUTSIDE and cond.band is not None:
            upper, lower = (rows.column(b) for b in cond.band.bounds)
            fresh = (spot > upper) | (spot < lower)
            known = ~(np.isnan(upper) | np.isnan(lower))
            return fresh, fresh | ~known
        level = (
            np.full(len(spot), cond.threshold) if cond.level is None else rows.column(cond.level)
        )
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
        distance = np.abs(_rel(rows, cond.level))
        within = cond.within_pct or 0.0
        rearm = cond.rearm_pct or 2 * within
        return distance <= within, (distance <= rearm) | np.isnan(distance)


def _waiting(rule: Rule, rows: _Rows, st: AlertStatus, i: int, leaving: int) -> int | None:
    """The next candidate of a pending pair: the first row where the condition stops holding
    (`leaving`), or the first once `for` has run; None when that cannot be told."""
    if st.since is None or rule.hold <= 0:
        return None
    return min(leaving, rows.from_time(st.since + timedelta(seconds=rule.hold), i))


def _crossing(rule: Rule, rows: _Rows) -> tuple[QuietNext, Observe]:
    cond = rule.condition
    end = len(rows.usable)
    key = undirected(cond)
    if key not in rows.crossings:
        usable, rel = rows.history.usable, _rel(rows, cond.level)
        with np.errstate(invalid="ignore"):
            # On side b, a pair changes only once spot is clear of the dead band on the other
            # side (`to_side`), or, while pending, wherever it is not (`holding`).
            clear = {1.0: rel < -cond.buffer_pct, -1.0: rel > cond.buffer_pct}
        known = usable & ~np.isnan(rel)
        rows.crossings[key] = (
            {b: _RowSet.of(usable & m) for b, m in clear.items()},
            {b: _RowSet.of(known & ~m) for b, m in clear.items()},
        )
    to_side, holding = rows.crossings[key]

    def quiet_next(st: AlertStatus, i: int) -> int | None:
        b = st.baseline
        if b not in to_side:
            return None
        if st.state is _INACTIVE:
            return to_side[b].after(i, end)
        if st.state is _PENDING:
            return _waiting(rule, rows, st, i, holding[b].after(i, end))
        return None

    sym, subject, spot, level = rows.history.symbol, cond.subject, rows.spot, rows.level(cond.level)
    buffer, times, usable_rows = cond.buffer_pct, rows.history.times, rows.usable

    def observe(st: AlertStatus | None, i: int) -> Observation | None:
        # `evaluate._crosses`, for one row.
        value = level[i]
        if value is None or value == 0.0:
            return None
        s = spot[i]
        r = (s - value) / value * 100.0
        hard = 1.0 if r > buffer else (-1.0 if r < -buffer else None)
        if st is None or st.baseline is None:
            truth, side = Truth.FALSE, (1.0 if r > 0 else (-1.0 if r < 0 else None))
        else:
            side = st.baseline if hard is None else hard
            if side != st.baseline:
                truth = Truth.TRUE
            elif st.state is _INACTIVE:
                return None
            else:
                truth = Truth.FALSE
        before = i > 0 and usable_rows[i - 1]
        return crossing_observation(
            rule.id,
            sym,
            subject,
            truth=truth,
            side=side,
            spot=s,
            level=value,
            prev_spot=spot[i - 1] if before else None,
            prev_level=level[i - 1] if before else None,
            computed_at=times[i],
            after_gap=i > 0 and not before,
        )

    return quiet_next, observe


def _moved(rule: Rule, rows: _Rows) -> tuple[QuietNext, Observe]:
    cond = rule.condition
    column = rows.level(cond.level)
    value_at = rows.column(cond.level)
    valid = rows.history.usable & ~np.isnan(value_at)
    end = len(column)

    def quiet_next(st: AlertStatus, i: int) -> int | None:
        base = st.baseline
        if st.state is not _INACTIVE or base is None:
            return None
        # evaluate's own test, in the same float arithmetic: moved by at least the limit.
        limit = cond.by_abs if cond.by_abs is not None else abs(base) * (cond.by_pct or 0) / 100
        start, width = i + 1, 256  # windows that grow: a move is usually near
        while start < end:
            stop = start + width
            delta = np.abs(value_at[start:stop] - base)
            hits = np.flatnonzero(valid[start:stop] & (delta > 0) & (delta >= limit))
            if len(hits):
                return start + int(hits[0])
            start, width = stop, width * 4
        return end

    sym, subject, spot, times = rows.history.symbol, cond.subject, rows.spot, rows.history.times

    def observe(st: AlertStatus | None, i: int) -> Observation | None:
        # `evaluate._moves`, for one row.
        value = column[i]
        if value is None:
            return None
        base = st.baseline if st is not None else None
        truth = Truth.FALSE
        if base is not None:
            delta = abs(value - base)
            limit = cond.by_abs if cond.by_abs is not None else abs(base) * (cond.by_pct or 0) / 100
            if delta > 0 and delta >= limit:
                truth = Truth.TRUE
            elif st is not None and st.state is _INACTIVE:
                return None
        return moved_observation(
            rule.id,
            sym,
            subject,
            truth=truth,
            value=value,
            base=base,
            spot=spot[i],
            computed_at=times[i],
        )

    return quiet_next, observe


def _state(rule: Rule, rows: _Rows) -> tuple[QuietNext, Observe]:
    cond = rule.condition
    end = len(rows.usable)
    if cond not in rows.states:
        fresh, armed = _state_masks(cond, rows)
        usable = rows.history.usable
        rows.states[cond] = (_RowSet.of(usable & fresh), _RowSet.of(usable & ~armed))
    entering, leaving = rows.states[cond]
    repeat = timedelta(seconds=rule.repeat) if rule.repeat is not None else None

    def quiet_next(st: AlertStatus, i: int) -> int | None:
        if st.state is _INACTIVE:
            return entering.after(i, end)
        leave = leaving.after(i, end)
        if st.state is _PENDING:
            return _waiting(rule, rows, st, i, leave)
        # Firing: only leaving changes it, or a reminder once `repeat` has run.
        if repeat is None or st.last_notified is None or st.last_reason not in NOTIFIED:
            return leave
        return min(leave, rows.from_time(st.last_notified + repeat, i))

    sym, subject, spot, times = rows.history.symbol, cond.subject, rows.spot, rows.history.times
    levels = rows.levels
    no_repeat = repeat is None

    share_col: list[float | None] = []
    settles_col: list[float | None] = []
    if cond.kind is ConditionKind.ROLLS_OFF:
        share_col, settles_col = (_nulls(c) for c in rows.roll_off_columns(cond.level))

    def facts(i: int) -> tuple[float | None, float | None]:
        return (share_col[i], settles_col[i]) if share_col else (None, None)

    def observe(st: AlertStatus | None, i: int) -> Observation | None:
        # `evaluate._states`, for one row.
        share, settles_in = facts(i)
        truths = state_truths(
            cond,
            spot[i],
            lambda lv: levels[lv][i] if lv in levels else None,
            share=share,
            settles_in=settles_in,
        )
        if truths is None:
            return None
        unarmed, when_armed, level = truths
        if st is None or st.state is _INACTIVE:
            truth = unarmed
            if st is not None and not truth:
                return None
        else:
            truth = when_armed
            if truth and st.state is _FIRING and no_repeat:
                return None
        return state_observation(
            rule.id,
            sym,
            subject,
            truth=Truth.TRUE if truth else Truth.FALSE,
            level=level,
            spot=spot[i],
            computed_at=times[i],
            share=share,
            settles_in=settles_in,
        )

    return quiet_next, observe


def _walk(rule: Rule, rows: _Rows) -> list[tuple[datetime, ReplayedAlert]]:
    """Every alert of one rule on one symbol, deciding only at its candidate rows."""
    kind = rule.condition.kind
    make = (
        _crossing
        if kind is ConditionKind.CROSSES
        else (_moved if kind is ConditionKind.MOVED else _state)
    )
    quiet_next, observe = make(rule, rows)
    end = len(rows.usable)
    times, hvl = rows.history.times, rows.level(Level.HVL)
    sources, switches = rows.history.sources, rows.switches
    alerts: list[tuple[datetime, ReplayedAlert]] = []
    status: AlertStatus | None = None
    i = -1
    while True:
        nxt = quiet_next(status, i) if status is not None else None
        # A change of source is decided at its row whatever the status says (it re-baselines).
        i = rows.after(i) if nxt is None else min(nxt, switches.after(i, end))
        if i >= end:
            return alerts
        obs = observe(status, i)
        if obs is None:
            continue
        at = times[i]
        decision = decide(status, obs, at, rule, rebase=switches.has(i))
        if decision.reason is NotifyReason.UNCHANGED or decision.status == status:
            continue
        status = decision.status
        if decision.notify:
            event = alert_event(decision, rule, now=at, hvl=hvl[i], source=sources[i])
            alerts.append((at, ReplayedAlert(at, rule.id, event.symbol, event.reason, event)))


def replay_columns(rules: Sequence[Rule], series: Mapping[str, SymbolHistory]) -> ReplayResult:
    """What `replay(rules, frames(…))` finds on the same history, walking each rule and symbol
    on its own."""
    rows = {sym: _Rows.of(h) for sym, h in series.items() if len(h)}
    result = ReplayResult()
    if not rows:
        return result
    result.start = min(r.history.times[0] for r in rows.values())
    result.end = max(r.history.times[-1] for r in rows.values())
    result.snapshots = sum(len(r.usable) for r in rows.values())
    # `replay` reports a snapshot's alerts in evaluate's order: condition groups, their
    # rules, then the symbols as the rule lists them (or as the history does).
    found: list[tuple[datetime, ReplayedAlert]] = []
    for _, group in index_rules(rules).groups:
        for rule in group:
            symbols = list(rows) if rule.symbols is None else rule.symbols
            for sym in symbols:
                if sym in rows:
                    found += _walk(rule, rows[sym])
    found.sort(key=lambda pair: pair[0])  # stable: the order above within one snapshot
    result.alerts = [alert for _, alert in found]
    return result
