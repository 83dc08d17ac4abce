"""Replay: run history through the same evaluate/decide core as the live bot, and count.

"How noisy would this rule have been?" The recorded timestamps are the clock, so cooldowns,
`for` and `repeat` behave as live. A gap in the history is replayed as the symbol missing, as
the live bot would have seen it, so alerts after a gap are marked the same way.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from gexbot.core.alert import NotifyReason, StatusBook
from gexbot.core.cycle import run_rules
from gexbot.core.evaluate import index_rules
from gexbot.core.events import AlertEvent, events_for
from gexbot.core.history import gap_starts
from gexbot.core.render import render
from gexbot.core.rules import ConditionKind, Rule
from gexbot.core.snapshot import (
    BundleSnapshot,
    Level,
    StressHistory,
    SymbolSnapshot,
    SymbolStatus,
)

#: What BackQuant's stress history carries (std-signed): spot, HVL and the two main walls.
STRESS_HISTORY_LEVELS = frozenset({Level.HVL, Level.CALL_RESISTANCE, Level.PUT_SUPPORT})


def levels_used(rule: Rule) -> set[Level]:
    """The levels a rule needs to be evaluated."""
    cond = rule.condition
    if cond.kind is ConditionKind.OUTSIDE and cond.band is not None:
        return set(cond.band.bounds)
    return {cond.level} if cond.level is not None else set()


def not_replayable(rules: Iterable[Rule], available: frozenset[Level]) -> dict[str, list[str]]:
    """Rules whose levels the source lacks: rule id → the missing level names."""
    out = {}
    for rule in rules:
        missing = sorted(lv.value for lv in levels_used(rule) - available)
        if missing:
            out[rule.id] = missing
    return out


def history_to_snapshots(symbol: str, stress: StressHistory) -> list[SymbolSnapshot]:
    """Stress-history rows as snapshots (call wall → call resistance, put wall → support): the
    reference replay's input; `SymbolHistory.of_stress` is the column replay's."""
    return [
        SymbolSnapshot(
            symbol=symbol,
            status=SymbolStatus.OK if spot is not None else SymbolStatus.MISSING,
            spot=spot,
            computed_at=at,
            levels=MappingProxyType(
                {Level.HVL: hvl, Level.CALL_RESISTANCE: call, Level.PUT_SUPPORT: put}
            ),
        )
        for at, spot, hvl, call, put in zip(
            stress.times, stress.spot, stress.hvl, stress.call_wall, stress.put_wall, strict=True
        )
    ]


def with_gaps(snaps: Sequence[SymbolSnapshot]) -> list[tuple[datetime, SymbolSnapshot]]:
    """One symbol's history as (time, snapshot), oldest first, with a missing snapshot where
    `gap_starts` finds a gap (as live would see it)."""
    timed = [(s.computed_at, s) for s in snaps if s.computed_at is not None]
    usual, starts = gap_starts([at for at, _ in timed])
    gaps = set(starts)
    out: list[tuple[datetime, SymbolSnapshot]] = []
    for k, (at, snap) in enumerate(timed):
        if k in gaps:
            gap = SymbolSnapshot(symbol=snap.symbol, status=SymbolStatus.MISSING)
            out.append((timed[k - 1][0] + usual, gap))
        out.append((at, snap))
    return out


def frames(series: Mapping[str, Sequence[SymbolSnapshot]]) -> list[BundleSnapshot]:
    """One bundle per timestamp, every symbol's snapshot at that time (gaps as missing)."""
    by_time: dict[datetime, dict[str, SymbolSnapshot]] = {}
    for sym, snaps in series.items():
        for at, snap in with_gaps(snaps):
            by_time.setdefault(at, {})[sym] = snap
    return [
        BundleSnapshot(received_at=at, symbols=MappingProxyType(by_time[at]))
        for at in sorted(by_time)
    ]


@dataclass(frozen=True, slots=True)
class ReplayedAlert:
    """One message the rules would have sent."""

    at: datetime
    rule_id: str
    symbol: str
    reason: NotifyReason
    event: AlertEvent

    @property
    def headline(self) -> str:
        """The alert's first line, as it would have been sent (rendered on demand)."""
        return render(self.event).headline


@dataclass(frozen=True, slots=True)
class PairStats:
    """How often one rule fired on one symbol."""

    rule_id: str
    symbol: str
    alerts: int
    per_day: float
    median_gap: float | None  # seconds
    shortest_gap: float | None
    longest_quiet: float  # seconds without an alert, start and end of the window included
    first: tuple[datetime, ...]


@dataclass(slots=True)
class ReplayResult:
    """Everything a replay found."""

    start: datetime | None = None
    end: datetime | None = None
    snapshots: int = 0
    alerts: list[ReplayedAlert] = field(default_factory=list)

    def stats(self, rules: Sequence[Rule], symbols: Sequence[str]) -> list[PairStats]:
        """Per rule and symbol (pairs the rule watches), in rule order."""
        if self.start is None or self.end is None:
            return []
        days = max((self.end - self.start).total_seconds() / 86400.0, 1e-9)
        by_pair: dict[tuple[str, str], list[datetime]] = {}
        for a in self.alerts:
            by_pair.setdefault((a.rule_id, a.symbol), []).append(a.at)
        out = []
        for rule in rules:
            for sym in symbols:
                if not rule.applies_to(sym):
                    continue
                times = by_pair.get((rule.id, sym), [])
                gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
                edges = [self.start, *times, self.end]
                quiet = max((b - a).total_seconds() for a, b in itertools.pairwise(edges))
                out.append(
                    PairStats(
                        rule_id=rule.id,
                        symbol=sym,
                        alerts=len(times),
                        per_day=len(times) / days,
                        median_gap=statistics.median(gaps) if gaps else None,
                        shortest_gap=min(gaps) if gaps else None,
                        longest_quiet=quiet,
                        first=tuple(times[:3]),
                    )
                )
        return out


def replay(rules: Sequence[Rule], history: Iterable[BundleSnapshot]) -> ReplayResult:
    """Run `history` (oldest first) through evaluate/decide with its own timestamps as `now`."""
    index = index_rules(rules)
    statuses = StatusBook()
    last: dict[str, SymbolSnapshot] = {}
    previous = BundleSnapshot(received_at=None, symbols=MappingProxyType(last))
    result = ReplayResult()
    for frame in history:
        now = frame.received_at
        if now is None:
            continue
        if result.start is None:
            result.start = now
        result.end = now
        result.snapshots += len(frame.symbols)
        cycle = run_rules(index, statuses, previous if last else None, frame, now=now)
        statuses.apply(cycle.statuses)
        if cycle.decisions:
            for event, _ in events_for(cycle.alerts, index.by_id, now=now, bundle=frame):
                result.alerts.append(
                    ReplayedAlert(now, event.rule_id, event.symbol, event.reason, event)
                )
        last.update(frame.symbols)
    return result
