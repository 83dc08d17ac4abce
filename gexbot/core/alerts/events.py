"""Alert events: what a sending decision becomes, stored in the outbox and rendered per platform.

The outbox holds the event, not a rendered message, so each platform renders it its own way
at delivery time and a template fix applies to messages still waiting.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from gexbot.core.alerts.audience import RULES_ONLY, Audience
from gexbot.core.alerts.lifecycle import Decision
from gexbot.core.alerts.states import NotifyReason
from gexbot.core.language.model import Rule, Severity
from gexbot.core.market.snapshot import BundleSnapshot, Level
from gexbot.core.market.wire import parse_time
from gexbot.core.present.labels import source_name


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One notification about one rule and symbol (or one feed warning)."""

    key: str  # de-duplication key: "rule-id|SYMBOL" (or "warning:kind|SYMBOL")
    seq: int  # notification sequence within the key
    rule_id: str
    symbol: str
    reason: NotifyReason
    severity: Severity
    at: datetime  # when the bot decided
    kind: str = ""  # the condition (crosses, near, …) or the warning (missing, stale, …)
    level_name: str = ""
    level: float | None = None
    spot: float | None = None
    distance_pct: float | None = None
    direction: str | None = None
    cause: str | None = None
    previous_level: float | None = None
    computed_at: datetime | None = None
    hvl: float | None = None  # for the regime line of every alert
    after_gap: bool = False  # decided on the first data after a gap in the feed
    chart: bool = False  # the rule asks for the levels chart with the alert
    message: str | None = None  # the rule's template, or a warning's full text
    once: bool = False  # a personal alert that is deleted by this alert
    source: str | None = None  # where the levels came from when not BackQuant: `Deribit chains`
    share: float | None = None  # rolls_off: the wall's share (0–1) of gamma settling next
    settles_in: float | None = None  # rolls_off: seconds from `computed_at` to the settlement

    def to_payload(self) -> dict[str, Any]:
        """A JSON-safe dict (datetimes as ISO 8601)."""
        # Every field is a scalar: a shallow copy, read in one C call (asdict deep-copies, 30x
        # slower; thousands are written a cycle with many personal alerts).
        out = dict(zip(_FIELDS, _VALUES(self), strict=True))
        out["reason"] = str(self.reason)  # StrEnums: str() is the value, at C speed
        out["severity"] = str(self.severity)
        out["at"] = self.at.isoformat()
        out["computed_at"] = self.computed_at.isoformat() if self.computed_at else None
        return out

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> AlertEvent:
        """The inverse of `to_payload`."""
        fields = dict(data)
        fields["reason"] = NotifyReason(fields["reason"])
        fields["severity"] = Severity(fields["severity"])
        at = parse_time(fields["at"])
        if at is None:
            raise ValueError(f"bad event time {fields['at']!r}")
        fields["at"] = at
        fields["computed_at"] = parse_time(fields.get("computed_at"))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in fields.items() if k in known})


_FIELDS = tuple(f.name for f in fields(AlertEvent))
_VALUES = operator.attrgetter(*_FIELDS)


class WarningKind(StrEnum):
    """The bot's own warnings (rule ids `warning:<kind>`), sent on the `warnings` route."""

    MISSING = "missing"
    INVALID = "invalid"
    STALE = "stale"
    FEED_DOWN = "feed"
    AUTH = "auth"
    DELIVERY = "delivery"  # a channel failed for good
    RULES = "rules"  # new rule files were refused
    SOURCE_FALLBACK = "source-fallback"  # `both`: a symbol's levels come from the chains
    LEVELS_DISAGREE = "levels-disagree"  # `both`: BackQuant and the chains disagree

    @property
    def rule_id(self) -> str:
        """The id these warnings are stored and keyed under."""
        return f"warning:{self.value}"

    @property
    def per_symbol(self) -> bool:
        """True when each symbol has its own warning (the others concern the whole bot)."""
        return self in _PER_SYMBOL


_PER_SYMBOL = frozenset(
    {
        WarningKind.MISSING,
        WarningKind.INVALID,
        WarningKind.STALE,
        WarningKind.SOURCE_FALLBACK,
        WarningKind.LEVELS_DISAGREE,
    }
)


ALL_SYMBOLS = "*"  # the subject of a warning about the whole feed


def is_warning(rule_id: str) -> bool:
    """True for the bot's own warnings, as opposed to the users' rules."""
    return rule_id.startswith("warning:")


def warning_event(
    kind: WarningKind,
    subject: str,
    *,
    seq: int,
    reason: NotifyReason,
    now: datetime,
    text: str,
    severity: Severity = Severity.WARNING,
) -> AlertEvent:
    """The one way a warning becomes an event: keyed `warning:<kind>|<subject>`.

    `subject` is the symbol of a per-symbol warning, `ALL_SYMBOLS` for the feed as a whole, or
    what the warning is about (a channel). Recoveries are always informational.
    """
    return AlertEvent(
        key=alert_key(kind.rule_id, subject),
        seq=seq,
        rule_id=kind.rule_id,
        symbol=subject if kind.per_symbol else "",
        reason=reason,
        severity=Severity.INFO if reason is NotifyReason.RESOLVED else severity,
        at=now,
        kind=kind.value,
        message=text,
    )


def alert_key(rule_id: str, symbol: str) -> str:
    """The de-duplication key of a rule and symbol."""
    return f"{rule_id}|{symbol}"


def events_for(
    decisions: Sequence[Decision],
    rules: Mapping[str, Rule],
    *,
    now: datetime,
    bundle: BundleSnapshot | None = None,
    audience: Audience = RULES_ONLY,
) -> list[tuple[AlertEvent, tuple[str, ...]]]:
    """Sending decisions as events, each with the channels its rule notifies and the chats
    subscribed to its rule or symbol."""
    out = []
    for d in decisions:
        if not d.notify:
            continue
        obs = d.observation
        rule = rules[obs.rule_id]
        snap = bundle.symbols.get(obs.symbol) if bundle is not None else None
        hvl = snap.level(Level.HVL) if snap is not None else None
        source = source_name(snap) if snap is not None and snap.from_chains else None
        event = alert_event(d, rule, now=now, hvl=hvl, source=source)
        out.append((event, (*rule.notify, *audience.subscribers(obs.rule_id, obs.symbol))))
    return out


def alert_event(
    d: Decision, rule: Rule, *, now: datetime, hvl: float | None, source: str | None = None
) -> AlertEvent:
    """One sending decision of `rule` as its event; `hvl` is the symbol's HVL for the regime
    line, `source` where the levels came from when not BackQuant."""
    obs = d.observation
    return AlertEvent(
        key=alert_key(obs.rule_id, obs.symbol),
        seq=d.status.seq,
        rule_id=obs.rule_id,
        symbol=obs.symbol,
        reason=d.reason,
        severity=rule.severity,
        at=now,
        kind=str(rule.condition.kind),  # StrEnums: str() is the value, at C speed
        level_name=obs.level_name,
        level=obs.level,
        spot=obs.spot,
        distance_pct=obs.distance_pct,
        direction=str(obs.direction) if obs.direction else None,
        cause=str(obs.cause) if obs.cause else None,
        previous_level=obs.previous_level,
        computed_at=obs.computed_at,
        hvl=hvl,
        after_gap=obs.after_gap,
        chart=rule.chart,
        message=rule.message,
        once=rule.once and d.reason is NotifyReason.FIRED,
        source=source,
        share=obs.share,
        settles_in=obs.settles_in,
    )
