"""What a replay finds (the alerts, counted per rule and symbol) and which rules it can run.

"How noisy would this rule have been?" `columns.replay_columns` answers it; the reference it is
held to (the live path run snapshot by snapshot) lives beside the tests, in
tests/reference_replay.py.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gexbot.core.alerts.events import AlertEvent
from gexbot.core.alerts.states import NotifyReason
from gexbot.core.language.model import ConditionKind, Rule
from gexbot.core.market.snapshot import (
    Level,
)
from gexbot.core.present.render import render

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
