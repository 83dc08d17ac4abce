"""Which personal alerts might change this cycle, found without looking at the others.

With 100,000 personal alerts most cycles change a handful, so visiting each one (what
`evaluate` does for the rule files' few rules) would cost the whole population every cycle.
The index keeps each alert in a bucket that says under which market it *rests* (its
observation could only be UNCHANGED for `decide`):

- a cross resting on side b (inactive, baseline b) wakes when the level's side becomes -b;
- a state condition (above, below, near, outside) resting inactive wakes when it becomes
  true, one resting firing (no repeat) when it stops being true (near: beyond the re-arm band);
- a move resting at baseline v wakes when the level moves from v by the alert's size;
- a roll-off (a wall's gamma settling soon) wakes when its truth, read from the chain, flips;
- everything else (no status yet, pending a `for`, a baseline unknown) is *restless* and is
  looked at every cycle.

Alerts with the same symbol and condition share a group, so a group's truth is computed once
however many alerts it holds. Fixed prices (`above 95000`) are kept sorted per symbol, and a
cycle wakes only the prices between the last spot and this one (bisect, not a scan).

The index only picks candidates: every candidate is then evaluated and decided by the same
`run_rules` as the rule files, so a superset costs time, never correctness. After a reload the
first cycle wakes everything (`full`), because the stored statuses may predate the last spot.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from gexbot.core.alerts.evaluate import roll_off_facts, state_truths, undirected
from gexbot.core.alerts.states import AlertState, AlertStatus
from gexbot.core.language.model import Condition, ConditionKind, Rule
from gexbot.core.market.snapshot import BundleSnapshot, SymbolSnapshot

GroupKey = tuple[str, Condition]  # (symbol, condition without direction)
_FIXED = (ConditionKind.ABOVE, ConditionKind.BELOW)


@dataclass(slots=True)
class _Group:
    condition: Condition
    buckets: dict[Hashable, set[str]] = field(default_factory=dict)  # resting key → rule ids
    members: int = 0  # resting or restless


def _resting(rule: Rule, st: AlertStatus | None) -> Hashable | None:
    """Where an alert rests given its status (None: restless, look at it every cycle)."""
    if st is None:
        return None
    kind = rule.condition.kind
    if kind is ConditionKind.CROSSES or kind is ConditionKind.MOVED:
        if st.state is AlertState.INACTIVE and st.baseline is not None:
            return st.baseline
        return None
    if st.state is AlertState.INACTIVE:
        return AlertState.INACTIVE
    if st.state is AlertState.FIRING and rule.repeat is None:
        return AlertState.FIRING
    return None


def _key(rule: Rule) -> GroupKey:
    return (rule.symbols[0] if rule.symbols else ""), undirected(rule.condition)


class PersonalIndex:
    """The personal alerts by group and resting bucket; `candidates` picks a cycle's."""

    def __init__(self) -> None:
        self.rules: dict[str, Rule] = {}
        self._groups: dict[GroupKey, _Group] = {}
        self._where: dict[str, tuple[GroupKey, Hashable | None]] = {}
        self._restless: set[str] = set()
        # Per symbol and kind (above, below): the sorted distinct fixed prices with alerts.
        self._prices: dict[tuple[str, ConditionKind], list[float]] = {}
        self._level_groups: dict[str, list[GroupKey]] = {}  # per symbol: the other groups
        self._last_spot: dict[str, float] = {}
        self.full = True

    def __len__(self) -> int:
        return len(self.rules)

    # -- membership ---------------------------------------------------------------------------

    def add(self, rule: Rule, status: AlertStatus | None) -> None:
        """Index one alert (a single-symbol rule) with its current status."""
        if rule.id in self.rules:
            self.remove(rule.id)
        self.rules[rule.id] = rule
        key = _key(rule)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(key[1])
            self._register(key)
        group.members += 1
        self._place(rule, key, group, _resting(rule, status))

    def remove(self, rule_id: str) -> None:
        """Forget one alert (deleted, paused); unknown ids are ignored."""
        rule = self.rules.pop(rule_id, None)
        if rule is None:
            return
        key, resting = self._where.pop(rule_id)
        self._restless.discard(rule_id)
        group = self._groups[key]
        if resting is not None:
            bucket = group.buckets.get(resting)
            if bucket is not None:
                bucket.discard(rule_id)
                if not bucket:
                    del group.buckets[resting]
        group.members -= 1
        if not group.members:
            self._unregister(key)
            del self._groups[key]

    def update(self, changed: Iterable[tuple[str, AlertStatus]]) -> None:
        """Move alerts whose status a cycle changed to their new bucket."""
        for rule_id, status in changed:
            rule = self.rules.get(rule_id)
            if rule is None:
                continue
            key, old = self._where[rule_id]
            new = _resting(rule, status)
            if new == old and new is not None:
                continue
            group = self._groups[key]
            if old is None:
                self._restless.discard(rule_id)
            else:
                bucket = group.buckets[old]
                bucket.discard(rule_id)
                if not bucket:
                    del group.buckets[old]
            self._place(rule, key, group, new)

    def _place(self, rule: Rule, key: GroupKey, group: _Group, resting: Hashable | None) -> None:
        self._where[rule.id] = (key, resting)
        if resting is None:
            self._restless.add(rule.id)
        else:
            group.buckets.setdefault(resting, set()).add(rule.id)

    def _register(self, key: GroupKey) -> None:
        symbol, cond = key
        if cond.kind in _FIXED and cond.threshold is not None:
            prices = self._prices.setdefault((symbol, cond.kind), [])
            i = bisect.bisect_left(prices, cond.threshold)
            if i == len(prices) or prices[i] != cond.threshold:
                prices.insert(i, cond.threshold)
        else:
            self._level_groups.setdefault(symbol, []).append(key)

    def _unregister(self, key: GroupKey) -> None:
        symbol, cond = key
        if cond.kind in _FIXED and cond.threshold is not None:
            prices = self._prices[(symbol, cond.kind)]
            i = bisect.bisect_left(prices, cond.threshold)
            if i < len(prices) and prices[i] == cond.threshold:
                prices.pop(i)
        else:
            self._level_groups[symbol].remove(key)

    # -- one cycle ----------------------------------------------------------------------------

    def candidates(self, snapshot: BundleSnapshot) -> list[Rule]:
        """The alerts whose status might change on `snapshot` (a superset; never misses one).

        Call once per cycle, before deciding: it also records this cycle's spots.
        """
        if self.full:
            self.full = False
            self._remember(snapshot)
            return list(self.rules.values())
        woken: set[str] = set(self._restless)
        for symbol, snap in snapshot.symbols.items():
            if not snap.usable or snap.spot is None:
                continue  # no observation at all: nothing can change
            for key in self._level_groups.get(symbol, ()):
                group = self._groups[key]
                for resting in _woken(group.condition, group.buckets, snap):
                    woken |= group.buckets[resting]
            self._wake_prices(symbol, snap.spot, woken)
        self._remember(snapshot)
        return [self.rules[r] for r in woken]

    def _remember(self, snapshot: BundleSnapshot) -> None:
        for symbol, snap in snapshot.symbols.items():
            if snap.usable and snap.spot is not None:
                self._last_spot[symbol] = snap.spot

    def _wake_prices(self, symbol: str, spot: float, woken: set[str]) -> None:
        last = self._last_spot.get(symbol)
        for kind in _FIXED:
            prices = self._prices.get((symbol, kind))
            if not prices:
                continue
            if last is None:  # no spot seen yet: every price may have flipped
                lo, hi = 0, len(prices)
            else:  # a price's truth flips only between the last spot and this one
                lo = bisect.bisect_left(prices, min(last, spot))
                hi = bisect.bisect_right(prices, max(last, spot))
            for price in prices[lo:hi]:
                group = self._groups[(symbol, Condition(kind, threshold=price))]
                for bucket in group.buckets.values():
                    woken |= bucket


def _woken(
    cond: Condition, buckets: dict[Hashable, set[str]], snap: SymbolSnapshot
) -> list[Hashable]:
    """The resting buckets of a level group that this snapshot could change."""
    spot = snap.spot
    assert spot is not None  # noqa: S101 - the caller checks
    kind = cond.kind
    if kind is ConditionKind.ROLLS_OFF:  # time and the chain decide it, not spot
        share, settles_in = roll_off_facts(cond, snap)
        truths = state_truths(cond, spot, snap.levels.get, share=share, settles_in=settles_in)
        if truths is None:
            return []
        return _state_buckets(buckets, fresh=truths[0], armed=truths[1])
    if kind is ConditionKind.OUTSIDE:
        assert cond.band is not None  # noqa: S101 - the parser guarantees it
        up_name, down_name = cond.band.bounds
        upper, lower = snap.levels.get(up_name), snap.levels.get(down_name)
        if upper is None or lower is None:
            return []
        fresh = armed = spot > upper or spot < lower
        return _state_buckets(buckets, fresh=fresh, armed=armed)
    level = snap.levels.get(cond.level) if cond.level is not None else None
    if level is None or level == 0.0:
        return []  # a null level: evaluate reports nothing for the group
    rel = (spot - level) / level * 100.0
    if kind is ConditionKind.CROSSES:
        buffer = cond.buffer_pct
        hard = 1.0 if rel > buffer else (-1.0 if rel < -buffer else None)
        return [] if hard is None or -hard not in buckets else [-hard]
    if kind is ConditionKind.MOVED:
        out: list[Hashable] = []
        for base in buckets:
            assert isinstance(base, float)  # noqa: S101 - moved buckets are baselines
            limit = cond.by_abs if cond.by_abs is not None else abs(base) * (cond.by_pct or 0) / 100
            delta = abs(level - base)
            if delta > 0 and delta >= limit:
                out.append(base)
        return out
    if kind is ConditionKind.NEAR:
        if cond.within_abs is not None:
            distance, band = abs(spot - level), cond.within_abs
            rearm = cond.rearm_abs or 2 * band
        else:
            distance, band = abs(rel), cond.within_pct or 0.0
            rearm = cond.rearm_pct or 2 * band
        fresh, armed = distance <= band, distance <= rearm
    else:
        fresh = armed = spot > level if kind is ConditionKind.ABOVE else spot < level
    return _state_buckets(buckets, fresh=fresh, armed=armed)


def _state_buckets(
    buckets: dict[Hashable, set[str]], *, fresh: bool, armed: bool
) -> list[Hashable]:
    """Inactive alerts wake when the condition is true, firing ones when it stops being so."""
    out: list[Hashable] = []
    if fresh and AlertState.INACTIVE in buckets:
        out.append(AlertState.INACTIVE)
    if not armed and AlertState.FIRING in buckets:
        out.append(AlertState.FIRING)
    return out
