"""Rule evaluation: what each rule sees in a snapshot, as observations for `decide`.

Per symbol, spot and each level's signed distance from spot are computed once and shared by
every rule that uses them. Pairs whose observation could not change their status are skipped
(the cycle would only get `UNCHANGED` for them), which keeps 10,000 rules cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple, TypeVar

from gexbot.core.alerts.states import AlertState, AlertStatus
from gexbot.core.language.model import Condition, ConditionKind, Direction, Rule
from gexbot.core.market.snapshot import BundleSnapshot, Level, SymbolSnapshot


class Truth(StrEnum):
    """A condition's value in one snapshot."""

    TRUE = "true"
    FALSE = "false"
    UNKNOWN = "unknown"  # null level, or the symbol is missing, invalid or stale


class Cause(StrEnum):
    """What made spot change sides of a level."""

    SPOT = "spot"  # spot moved through the level
    LEVEL = "level"  # the level moved through spot
    BOTH = "both"


class Observation(NamedTuple):
    """What one rule saw for one symbol.

    A named tuple, not a frozen dataclass: one is built at every status change, live and in
    replay, and a tuple is built in a third of the time.
    """

    rule_id: str
    symbol: str
    truth: Truth
    level_name: str
    level: float | None = None
    spot: float | None = None
    distance_pct: float | None = None  # (level − spot) / spot, in %
    direction: Direction | None = None  # the way spot crossed / the level moved / spot's side
    cause: Cause | None = None
    baseline: float | None = None  # the baseline a fire would record (side, or level value)
    previous_level: float | None = None
    computed_at: datetime | None = None
    after_gap: bool = False  # the previous poll had no usable data for this symbol
    share: float | None = None  # rolls_off: the wall's share (0–1) of gamma settling next
    settles_in: float | None = None  # rolls_off: seconds from the data's time to settlement


@dataclass(slots=True)
class _SymbolView:
    snap: SymbolSnapshot
    spot: float
    rel: dict[Level, float]  # (spot − level) / level in %, per non-null level
    prev_spot: float | None
    prev_levels: Mapping[Level, float | None]
    after_gap: bool


def _views(previous: BundleSnapshot | None, snapshot: BundleSnapshot) -> dict[str, _SymbolView]:
    views = {}
    for sym, snap in snapshot.symbols.items():
        if not snap.usable or snap.spot is None:
            continue
        spot = snap.spot
        rel = {
            lv: (spot - value) / value * 100.0
            for lv, value in snap.levels.items()
            if value is not None and value != 0.0
        }
        prev = previous.symbols.get(sym) if previous is not None else None
        views[sym] = _SymbolView(
            snap,
            spot,
            rel,
            prev.spot if prev is not None and prev.usable else None,
            prev.levels if prev is not None and prev.usable else {},
            prev is not None and not prev.usable,
        )
    return views


def _cause(prev_spot: float | None, prev_level: float | None, spot: float, level: float) -> Cause:
    if prev_spot is None or prev_level is None:
        return Cause.SPOT
    spot_moved = (prev_spot > level) != (spot > level)
    level_moved = (prev_spot > prev_level) != (prev_spot > level)
    if spot_moved and not level_moved:
        return Cause.SPOT
    if level_moved and not spot_moved:
        return Cause.LEVEL
    return Cause.BOTH


Statuses = Mapping[str, Mapping[str, AlertStatus]]  # rule id → symbol → status
_NO_STATUS: Mapping[str, AlertStatus] = {}


@dataclass(frozen=True, slots=True)
class RuleIndex:
    """Rules grouped by identical condition, built once per rule set (not per cycle)."""

    rules: tuple[Rule, ...]
    by_id: Mapping[str, Rule]
    groups: tuple[tuple[Condition, tuple[Rule, ...]], ...]


@functools.lru_cache(maxsize=65536)
def undirected(cond: Condition) -> Condition:
    """The condition without `direction`, which only matters to `decide`: crosses that differ
    only there share one computation (cached: a few conditions serve 100,000 alerts)."""
    return replace(cond, direction=Direction.ANY) if cond.direction is not Direction.ANY else cond


def index_rules(rules: Iterable[Rule]) -> RuleIndex:
    """Group rules by condition so each condition is computed once per symbol."""
    ordered = tuple(rules)
    groups: dict[Condition, list[Rule]] = {}
    for rule in ordered:
        groups.setdefault(undirected(rule.condition), []).append(rule)
    return RuleIndex(
        rules=ordered,
        by_id={r.id: r for r in ordered},
        groups=tuple((cond, tuple(group)) for cond, group in groups.items()),
    )


def evaluate(
    rules: RuleIndex | Iterable[Rule],
    previous: BundleSnapshot | None,
    snapshot: BundleSnapshot,
    *,
    statuses: Statuses,
    include_unchanged: bool = False,
) -> list[Observation]:
    """Observations for every rule × served symbol whose status might change.

    Rules with the same condition share one computation per symbol; a pair is skipped when its
    observation could only be UNCHANGED or UNKNOWN for `decide` (`include_unchanged` keeps
    them, for tests and tools).
    """
    index = rules if isinstance(rules, RuleIndex) else index_rules(rules)
    views = _views(previous, snapshot)
    out: list[Observation] = []
    for cond, group in index.groups:
        if cond.kind is ConditionKind.CROSSES:
            _crosses(cond, group, views=views, statuses=statuses, out=out, keep=include_unchanged)
        elif cond.kind is ConditionKind.MOVED:
            _moves(cond, group, views=views, statuses=statuses, out=out, keep=include_unchanged)
        else:
            _states(cond, group, views=views, statuses=statuses, out=out, keep=include_unchanged)
    return out


def _applicable(rule: Rule, table: dict[str, _P]) -> Iterable[tuple[str, _P]]:
    if rule.symbols is None:
        return table.items()
    return [(s, table[s]) for s in rule.symbols if s in table]


_P = TypeVar("_P")


def _crosses(
    cond: Condition,
    group: tuple[Rule, ...],
    *,
    views: dict[str, _SymbolView],
    statuses: Statuses,
    out: list[Observation],
    keep: bool,
) -> None:
    level = cond.level
    assert level is not None  # noqa: S101 - the parser guarantees it
    buffer = cond.buffer_pct
    # Per symbol: the side outside the dead band (None inside it) and the raw side.
    table: dict[str, tuple[float | None, float | None]] = {}
    for sym, view in views.items():
        rel = view.rel.get(level)
        if rel is None:
            continue
        hard = 1.0 if rel > buffer else (-1.0 if rel < -buffer else None)
        table[sym] = (hard, 1.0 if rel > 0 else (-1.0 if rel < 0 else None))
    inactive = AlertState.INACTIVE
    for rule in group:
        mine = statuses.get(rule.id, _NO_STATUS)
        for sym, (hard, raw) in table.items() if rule.symbols is None else _applicable(rule, table):
            st = mine.get(sym)
            if st is None or st.baseline is None:
                out.append(_crossing(rule, views[sym], sym, truth=Truth.FALSE, side=raw))
                continue
            side = st.baseline if hard is None else hard
            if side == st.baseline:
                if st.state is inactive and not keep:
                    continue
                out.append(_crossing(rule, views[sym], sym, truth=Truth.FALSE, side=side))
            else:
                out.append(_crossing(rule, views[sym], sym, truth=Truth.TRUE, side=side))


def _moves(
    cond: Condition,
    group: tuple[Rule, ...],
    *,
    views: dict[str, _SymbolView],
    statuses: Statuses,
    out: list[Observation],
    keep: bool,
) -> None:
    level = cond.level
    assert level is not None  # noqa: S101 - the parser guarantees it
    table = {
        sym: value
        for sym, view in views.items()
        if (value := view.snap.levels.get(level)) is not None
    }
    inactive = AlertState.INACTIVE
    for rule in group:
        mine = statuses.get(rule.id, _NO_STATUS)
        for sym, value in table.items() if rule.symbols is None else _applicable(rule, table):
            st = mine.get(sym)
            base = st.baseline if st is not None else None
            truth = Truth.FALSE  # no baseline yet: first sight
            if base is not None:
                delta = abs(value - base)
                limit = (
                    cond.by_abs if cond.by_abs is not None else abs(base) * (cond.by_pct or 0) / 100
                )
                if delta > 0 and delta >= limit:
                    truth = Truth.TRUE
                elif st is not None and st.state is inactive and not keep:
                    continue
            view = views[sym]
            out.append(
                moved_observation(
                    rule.id,
                    sym,
                    rule.condition.subject,
                    truth=truth,
                    value=value,
                    base=base,
                    spot=view.spot,
                    computed_at=view.snap.computed_at,
                )
            )


def _states(
    cond: Condition,
    group: tuple[Rule, ...],
    *,
    views: dict[str, _SymbolView],
    statuses: Statuses,
    out: list[Observation],
    keep: bool,
) -> None:
    table = _state_table(cond, views)
    inactive, firing = AlertState.INACTIVE, AlertState.FIRING
    for rule in group:
        mine = statuses.get(rule.id, _NO_STATUS)
        no_repeat = rule.repeat is None
        for sym, (fresh, armed, level) in (
            table.items() if rule.symbols is None else _applicable(rule, table)
        ):
            st = mine.get(sym)
            if st is None:
                truth = fresh
            elif st.state is inactive:
                truth = fresh
                if not truth and not keep:
                    continue
            else:
                truth = armed
                if truth and st.state is firing and no_repeat and not keep:
                    continue
            value = Truth.TRUE if truth else Truth.FALSE
            view = views[sym]
            share, settles_in = roll_off_facts(cond, view.snap)
            out.append(
                state_observation(
                    rule.id,
                    sym,
                    rule.condition.subject,
                    truth=value,
                    level=level,
                    spot=view.spot,
                    computed_at=view.snap.computed_at,
                    share=share,
                    settles_in=settles_in,
                )
            )


def _state_table(
    cond: Condition, views: dict[str, _SymbolView]
) -> dict[str, tuple[bool, bool, float | None]]:
    """Per symbol: truth when not armed, truth when armed (near's wider band), and the level."""
    table: dict[str, tuple[bool, bool, float | None]] = {}
    if cond.kind in (ConditionKind.ABOVE, ConditionKind.BELOW):  # the common, cheap case
        above = cond.kind is ConditionKind.ABOVE
        for sym, view in views.items():
            level = cond.threshold if cond.level is None else view.snap.levels.get(cond.level)
            if level is not None:
                truth = view.spot > level if above else view.spot < level
                table[sym] = (truth, truth, level)
        return table
    if cond.kind is ConditionKind.NEAR and cond.within_pct is not None and cond.level:
        within = cond.within_pct
        rearm = cond.rearm_pct or 2 * within
        for sym, view in views.items():
            rel = view.rel.get(cond.level)
            if rel is not None:
                d = abs(rel)
                table[sym] = (d <= within, d <= rearm, view.snap.levels.get(cond.level))
        return table
    for sym, view in views.items():
        share, settles_in = roll_off_facts(cond, view.snap)
        truths = state_truths(
            cond, view.spot, view.snap.levels.get, share=share, settles_in=settles_in
        )
        if truths is not None:
            table[sym] = truths
    return table


def roll_off_facts(cond: Condition, snap: SymbolSnapshot) -> tuple[float | None, float | None]:
    """A rolls_off condition's inputs in `snap`: its wall's share of gamma settling at the
    next 08:00 UTC, and the seconds from the data's time to then (None: not from the chains,
    or any other condition)."""
    chain = snap.chain
    if cond.kind is not ConditionKind.ROLLS_OFF or chain is None or cond.level is None:
        return None, None
    at = snap.computed_at
    settles_in = (chain.settles_at - at).total_seconds() if at is not None else None
    return chain.roll_off.get(cond.level), settles_in


def state_truths(
    cond: Condition,
    spot: float,
    level_of: Callable[[Level], float | None],
    *,
    share: float | None = None,
    settles_in: float | None = None,
) -> tuple[bool, bool, float | None] | None:
    """A state condition (near, above, below, outside, rolls_off) at one spot: its truth when
    not armed, its truth when armed (near's wider re-arm band) and the level it is about; None
    when a level it needs is null (rolls_off: or its `share` or `settles_in`, see
    `roll_off_facts`)."""
    if cond.kind is ConditionKind.ROLLS_OFF:
        return _rolls_off(cond, level_of, share, settles_in)
    unarmed, level = _state_truth(cond, spot, level_of, armed=False)
    if unarmed is Truth.UNKNOWN:
        return None
    armed: Truth = unarmed
    if cond.kind is ConditionKind.NEAR:
        armed = _state_truth(cond, spot, level_of, armed=True)[0]
    return unarmed is Truth.TRUE, armed is Truth.TRUE, level


def _rolls_off(
    cond: Condition,
    level_of: Callable[[Level], float | None],
    share: float | None,
    settles_in: float | None,
) -> tuple[bool, bool, float | None] | None:
    level = level_of(cond.level) if cond.level is not None else None
    if level is None or share is None or settles_in is None:
        return None
    truth = share * 100.0 >= (cond.share_pct or 0.0) and 0 < settles_in <= (cond.within_s or 0)
    return truth, truth, level


def _state_truth(
    cond: Condition, spot: float, level_of: Callable[[Level], float | None], *, armed: bool
) -> tuple[Truth, float | None]:
    kind = cond.kind
    if kind is ConditionKind.OUTSIDE:
        assert cond.band is not None  # noqa: S101 - the parser guarantees it
        up_name, down_name = cond.band.bounds
        upper = level_of(up_name)
        lower = level_of(down_name)
        if upper is None or lower is None:
            return Truth.UNKNOWN, None
        if spot > upper:
            return Truth.TRUE, upper
        if spot < lower:
            return Truth.TRUE, lower
        return Truth.FALSE, upper if upper - spot < spot - lower else lower
    level = cond.threshold if cond.level is None else level_of(cond.level)
    if level is None:
        return Truth.UNKNOWN, None
    if kind is ConditionKind.ABOVE:
        return (Truth.TRUE if spot > level else Truth.FALSE), level
    if kind is ConditionKind.BELOW:
        return (Truth.TRUE if spot < level else Truth.FALSE), level
    # NEAR: enter within the band; once armed, stay true until beyond the wider re-arm band.
    if cond.within_abs is not None:
        band = (cond.rearm_abs or 2 * cond.within_abs) if armed else cond.within_abs
        return (Truth.TRUE if abs(spot - level) <= band else Truth.FALSE), level
    if cond.level is None or level == 0.0:  # a percentage of a threshold, or of zero: unknown
        return Truth.UNKNOWN, None
    rel = (spot - level) / level * 100.0
    within = cond.within_pct or 0.0
    band = (cond.rearm_pct or 2 * within) if armed else within
    return (Truth.TRUE if abs(rel) <= band else Truth.FALSE), level


def _distance(level: float | None, spot: float) -> float | None:
    return None if level is None else (level - spot) / spot * 100.0


def _crossing(
    rule: Rule, view: _SymbolView, sym: str, *, truth: Truth, side: float | None
) -> Observation:
    lv = rule.condition.level
    assert lv is not None  # noqa: S101 - the parser guarantees it
    level = view.snap.levels.get(lv)
    assert level is not None  # noqa: S101 - rel exists only for non-null levels
    return crossing_observation(
        rule.id,
        sym,
        rule.condition.subject,
        truth=truth,
        side=side,
        spot=view.spot,
        level=level,
        prev_spot=view.prev_spot,
        prev_level=view.prev_levels.get(lv),
        computed_at=view.snap.computed_at,
        after_gap=view.after_gap,
    )


def crossing_observation(
    rule_id: str,
    sym: str,
    level_name: str,
    *,
    truth: Truth,
    side: float | None,
    spot: float,
    level: float,
    prev_spot: float | None,
    prev_level: float | None,
    computed_at: datetime | None,
    after_gap: bool,
) -> Observation:
    """What a crosses rule saw: spot on `side` of `level` (+1 above, −1 below)."""
    direction = None if side is None else (Direction.UP if side > 0 else Direction.DOWN)
    return Observation(
        rule_id=rule_id,
        symbol=sym,
        truth=truth,
        level_name=level_name,
        level=level,
        spot=spot,
        distance_pct=_distance(level, spot),
        direction=direction,
        cause=_cause(prev_spot, prev_level, spot, level) if truth is Truth.TRUE else None,
        baseline=side,
        previous_level=prev_level,
        computed_at=computed_at,
        after_gap=after_gap,
    )


def moved_observation(
    rule_id: str,
    sym: str,
    level_name: str,
    *,
    truth: Truth,
    value: float,
    base: float | None,
    spot: float,
    computed_at: datetime | None,
) -> Observation:
    """What a moved rule saw: the level at `value`, last alerted (or first seen) at `base`."""
    direction = None
    if base is not None and value != base:
        direction = Direction.UP if value > base else Direction.DOWN
    return Observation(
        rule_id=rule_id,
        symbol=sym,
        truth=truth,
        level_name=level_name,
        level=value,
        spot=spot,
        distance_pct=_distance(value, spot),
        direction=direction,
        cause=Cause.LEVEL if truth is Truth.TRUE else None,
        baseline=value,
        previous_level=base,
        computed_at=computed_at,
    )


def state_observation(
    rule_id: str,
    sym: str,
    level_name: str,
    *,
    truth: Truth,
    level: float | None,
    spot: float,
    computed_at: datetime | None,
    share: float | None = None,
    settles_in: float | None = None,
) -> Observation:
    """What a state rule (near, above, below, outside, rolls_off) saw."""
    direction = None if level is None else (Direction.UP if spot > level else Direction.DOWN)
    return Observation(
        rule_id=rule_id,
        symbol=sym,
        truth=truth,
        level_name=level_name,
        level=level,
        spot=spot,
        distance_pct=_distance(level, spot),
        direction=direction,
        computed_at=computed_at,
        share=share,
        settles_in=settles_in,
    )
