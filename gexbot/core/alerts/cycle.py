"""One evaluation cycle over every rule and symbol: evaluate, then decide each observation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gexbot.core.alerts.audience import RULES_ONLY, Audience
from gexbot.core.alerts.evaluate import RuleIndex, Statuses, evaluate, index_rules
from gexbot.core.alerts.lifecycle import Decision, decide
from gexbot.core.alerts.states import AlertStatus, NotifyReason, StatusKey
from gexbot.core.language.model import Rule
from gexbot.core.market.snapshot import BundleSnapshot


@dataclass(frozen=True, slots=True)
class CycleResult:
    """What changed: new statuses to persist and the decisions behind them."""

    decisions: tuple[Decision, ...]
    statuses: dict[StatusKey, AlertStatus]  # only the changed ones

    @property
    def alerts(self) -> list[Decision]:
        """Decisions that send a message."""
        return [d for d in self.decisions if d.notify]


def run_rules(
    rules: RuleIndex | Sequence[Rule],
    statuses: Statuses,
    previous: BundleSnapshot | None,
    snapshot: BundleSnapshot,
    *,
    now: datetime,
    audience: Audience = RULES_ONLY,
) -> CycleResult:
    """Evaluate and decide every rule × symbol; only changed statuses are returned."""
    index = rules if isinstance(rules, RuleIndex) else index_rules(rules)
    by_id = index.by_id
    decisions = []
    changed: dict[StatusKey, AlertStatus] = {}
    moved = switched_source(previous, snapshot)
    for obs in evaluate(index, previous, snapshot, statuses=statuses):
        key = (obs.rule_id, obs.symbol)
        prior = statuses.get(obs.rule_id, {}).get(obs.symbol)
        decision = decide(
            prior,
            obs,
            now,
            by_id[obs.rule_id],
            muted=audience.muted(obs.rule_id, obs.symbol),
            rebase=obs.symbol in moved,
        )
        if decision.reason is NotifyReason.UNCHANGED or decision.status == prior:
            continue
        decisions.append(decision)
        changed[key] = decision.status
    return CycleResult(tuple(decisions), changed)


def switched_source(previous: BundleSnapshot | None, snapshot: BundleSnapshot) -> frozenset[str]:
    """Symbols whose levels come from another source than in `previous` (BackQuant ↔ the
    chains): their rules re-baseline instead of alerting on the two sources' difference. Only
    from usable data to usable data: after a gap, the rules' own gap handling stands."""
    if previous is None:
        return frozenset()
    return frozenset(
        sym
        for sym, snap in snapshot.symbols.items()
        if snap.usable
        and (prev := previous.symbols.get(sym)) is not None
        and prev.usable
        and prev.from_chains != snap.from_chains
    )
