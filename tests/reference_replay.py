"""The reference replay: history run snapshot by snapshot through the live path
(`run_rules`, `events_for`), the definition the column replay (`gexbot.core.replay.columns`)
is held to by the property tests and compared with in bench/replay.py.

It lives beside them, not in the product: nothing the bot runs needs it. The recorded timestamps
are the clock, so cooldowns, `for` and `repeat` behave as live; a gap in the history is replayed
as the symbol missing, as the live bot would have seen it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType

from gexbot.core.alerts.cycle import run_rules
from gexbot.core.alerts.evaluate import index_rules
from gexbot.core.alerts.events import events_for
from gexbot.core.alerts.states import StatusBook
from gexbot.core.language.model import Rule
from gexbot.core.market.snapshot import (
    BundleSnapshot,
    Level,
    StressHistory,
    SymbolSnapshot,
    SymbolStatus,
)
from gexbot.core.replay.history import gap_starts
from gexbot.core.replay.result import ReplayedAlert, ReplayResult


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
