"""Helpers for rule tests: build rules and snapshots tersely, and step a rule through time."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from gexbot.core.alerts.audience import RULES_ONLY, Audience
from gexbot.core.alerts.cycle import run_rules
from gexbot.core.alerts.events import AlertEvent, events_for
from gexbot.core.alerts.lifecycle import Decision
from gexbot.core.alerts.states import AlertStatus, NotifyReason, StatusBook
from gexbot.core.language.model import Band, Condition, ConditionKind, Direction, Rule, Severity
from gexbot.core.market.snapshot import (
    BundleSnapshot,
    ChainFacts,
    Level,
    SymbolSnapshot,
    SymbolStatus,
)

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
MISSING = "missing"
STALE = "stale"


def alert_event(**kw: Any) -> AlertEvent:
    """The one alert-event factory of the tests: BTCUSDT crossing above HVL 67,000 by spot, as
    the bot would send it; keyword arguments override any field."""
    fields: dict[str, Any] = {
        "key": "hvl-regime|BTCUSDT",
        "seq": 1,
        "rule_id": "hvl-regime",
        "symbol": "BTCUSDT",
        "reason": NotifyReason.FIRED,
        "severity": Severity.CRITICAL,
        "at": T0,
        "kind": "crosses",
        "level_name": "hvl",
        "level": 67000.0,
        "spot": 67213.5,
        "distance_pct": -0.317,
        "direction": "up",
        "cause": "spot",
        "computed_at": T0,
        "hvl": 67000.0,
    }
    fields.update(kw)
    return AlertEvent(**fields)


def make_rule(kind: str, subject: Any = "hvl", rule_id: str = "r", **kw: Any) -> Rule:
    """A rule from a condition kind, its subject and options plus rule fields."""
    ck = ConditionKind(kind)
    cond_kw = {
        k: kw.pop(k)
        for k in list(kw)
        if k
        in {
            "buffer_pct",
            "within_pct",
            "within_abs",
            "rearm_pct",
            "rearm_abs",
            "by_pct",
            "by_abs",
            "share_pct",
            "within_s",
        }
    }
    if "direction" in kw:
        cond_kw["direction"] = Direction(kw.pop("direction"))
    if ck is ConditionKind.OUTSIDE:
        cond = Condition(ck, band=Band(subject), **cond_kw)
    elif isinstance(subject, int | float):
        cond = Condition(ck, threshold=float(subject), **cond_kw)
    else:
        cond = Condition(ck, level=Level(subject), **cond_kw)
    return Rule(id=rule_id, condition=cond, symbols=kw.pop("symbols", None), notify=("tty",), **kw)


def snapshot(
    spot: float, at: datetime = T0, symbol: str = "BTCUSDT", **levels: float | None
) -> SymbolSnapshot:
    """A served snapshot: spot and levels by rule name (`odte_hvl` for `odte.hvl`)."""
    named = {
        Level(k.replace("odte_", "odte.").replace("em_", "expected_move.")): v
        for k, v in levels.items()
    }
    return SymbolSnapshot(
        symbol=symbol,
        status=SymbolStatus.OK,
        spot=spot,
        computed_at=at,
        levels=MappingProxyType(named),
    )


def chain_facts(at: datetime = T0, venues: tuple[str, ...] = ("deribit", "bybit")) -> ChainFacts:
    """What marks a snapshot as computed from the chains."""
    return ChainFacts(venues=venues, contracts=100, net_gex=1e8, settles_at=at + timedelta(hours=2))


def bundle(*snaps: SymbolSnapshot, at: datetime = T0) -> BundleSnapshot:
    return BundleSnapshot(received_at=at, symbols=MappingProxyType({s.symbol: s for s in snaps}))


@dataclass
class Stepper:
    """Runs one rule over a sequence of market states, remembering statuses like the bot."""

    rule: Rule
    symbol: str = "BTCUSDT"
    now: datetime = T0
    statuses: StatusBook = field(default_factory=StatusBook)
    previous: BundleSnapshot | None = None
    decisions: list[Decision] = field(default_factory=list)
    events: list[AlertEvent] = field(default_factory=list)  # what was sent, as events
    audience: Audience = RULES_ONLY  # the chats' mutes and subscriptions, changeable per step

    def step(self, market: Any, dt: float = 30.0) -> NotifyReason | None:
        """Advance `dt` seconds to `market` (a dict of spot+levels, MISSING or STALE)."""
        self.now += timedelta(seconds=dt)
        if market == MISSING:
            snap = SymbolSnapshot(symbol=self.symbol, status=SymbolStatus.MISSING)
        elif market == STALE:
            snap = SymbolSnapshot(symbol=self.symbol, status=SymbolStatus.STALE, spot=1.0)
        else:
            levels = dict(market)
            chains = levels.pop("chains", False)  # computed from the venues' chains
            snap = snapshot(at=self.now, symbol=self.symbol, **levels)
            if chains:
                snap = replace(snap, chain=chain_facts(self.now))
        return self._cycle(snap)

    def step_snapshot(self, snap: SymbolSnapshot) -> NotifyReason | None:
        """One cycle on `snap` as given, at its own `computed_at`."""
        assert snap.computed_at is not None
        self.now = snap.computed_at
        return self._cycle(snap)

    def _cycle(self, snap: SymbolSnapshot) -> NotifyReason | None:
        current = bundle(snap, at=self.now)
        result = run_rules(
            [self.rule], self.statuses, self.previous, current, now=self.now, audience=self.audience
        )
        self.statuses.apply(result.statuses)
        self.previous = current
        self.decisions.extend(result.decisions)
        self.events.extend(
            e
            for e, _ in events_for(
                result.alerts, {self.rule.id: self.rule}, now=self.now, bundle=current
            )
        )
        mine = [d for d in result.decisions if d.observation.symbol == self.symbol]
        return mine[-1].reason if mine else None

    def run(self, markets: list[Any], dt: float = 30.0) -> list[str | None]:
        """Reasons per step (`None`: nothing changed)."""
        return [self._v(self.step(m, dt)) for m in markets]

    @staticmethod
    def _v(reason: NotifyReason | None) -> str | None:
        return None if reason is None else reason.value

    @property
    def status(self) -> AlertStatus | None:
        return self.statuses.get(self.rule.id, {}).get(self.symbol)

    @property
    def sent(self) -> list[Decision]:
        return [d for d in self.decisions if d.notify]
