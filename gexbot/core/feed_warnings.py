"""Built-in feed warnings: missing, invalid, stale, feed down, authentication.

They use the same statuses, lifecycle vocabulary and outbox as rule alerts, so they are
de-duplicated and durable too: a warning fires once, and one recovery notice follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from gexbot.core.alert import AlertState, AlertStatus, NotifyReason
from gexbot.core.events import AlertEvent
from gexbot.core.format import fmt_age
from gexbot.core.levels_view import Regime, regime
from gexbot.core.rules import Severity
from gexbot.core.snapshot import BundleSnapshot, Level, SymbolStatus
from gexbot.core.symbols import SUPPORTED_SYMBOLS

ALL = "*"


class WarningKind(StrEnum):
    """The built-in warnings (rule ids `warning:<kind>`)."""

    MISSING = "missing"
    INVALID = "invalid"
    STALE = "stale"
    FEED_DOWN = "feed"
    AUTH = "auth"

    @property
    def rule_id(self) -> str:
        """The id these warnings are stored and keyed under."""
        return f"warning:{self.value}"


@dataclass(frozen=True, slots=True)
class FeedContext:
    """What the poll loop knows beyond the bundle."""

    started_at: datetime
    interval: float
    missing_after: float
    stale_after: float
    last_success: datetime | None = None
    failure_kind: str | None = None  # FetchErrorKind value of the last failed poll
    failure_message: str | None = None


@dataclass(slots=True)
class WarningResult:
    """Changed warning statuses and the events to send."""

    statuses: dict[tuple[str, str], AlertStatus] = field(default_factory=dict)
    events: list[AlertEvent] = field(default_factory=list)


def _regime_sign(bundle: BundleSnapshot | None, symbol: str) -> float | None:
    snap = bundle.symbols.get(symbol) if bundle is not None else None
    if snap is None or not snap.usable:
        return None
    r = regime(snap.spot, snap.level(Level.HVL))
    return {Regime.ABOVE_HVL: 1.0, Regime.BELOW_HVL: -1.0}.get(r)


class _Builder:
    def __init__(self, statuses: Mapping[str, Mapping[str, AlertStatus]], now: datetime) -> None:
        self._statuses = statuses
        self.now = now
        self.out = WarningResult()

    def prior(self, kind: WarningKind, symbol: str) -> AlertStatus:
        return self._statuses.get(kind.rule_id, {}).get(symbol) or AlertStatus()

    def set(self, kind: WarningKind, symbol: str, status: AlertStatus) -> None:
        self.out.statuses[(kind.rule_id, symbol)] = status

    def send(
        self,
        kind: WarningKind,
        symbol: str,
        status: AlertStatus,
        *,
        reason: NotifyReason,
        text: str,
        severity: Severity = Severity.WARNING,
    ) -> None:
        self.set(kind, symbol, status)
        self.out.events.append(
            AlertEvent(
                key=f"{kind.rule_id}|{symbol}",
                seq=status.seq,
                rule_id=kind.rule_id,
                symbol="" if symbol == ALL else symbol,
                reason=reason,
                severity=Severity.INFO if reason is NotifyReason.RESOLVED else severity,
                at=self.now,
                kind=kind.value,
                message=text,
            )
        )

    def step(
        self,
        kind: WarningKind,
        symbol: str,
        *,
        truth: bool,
        hold: float,
        fire_text: str,
        clear_text: str,
        severity: Severity = Severity.WARNING,
        baseline: float | None = None,
    ) -> AlertStatus:
        """Pending → firing after `hold`; one notice when it clears. Returns the prior status."""
        prior = self.prior(kind, symbol)
        now = self.now
        if truth and prior.state is AlertState.INACTIVE:
            prior_pending = AlertStatus(
                AlertState.PENDING,
                now,
                baseline,
                prior.last_notified,
                prior.seq,
                NotifyReason.PENDING,
            )
            if hold > 0:
                self.set(kind, symbol, prior_pending)
                return prior
            prior = prior_pending
        if truth and prior.state is AlertState.PENDING:
            since = prior.since or now
            if (now - since).total_seconds() >= hold:
                fired = AlertStatus(
                    AlertState.FIRING, since, prior.baseline, now, prior.seq + 1, NotifyReason.FIRED
                )
                self.send(
                    kind,
                    symbol,
                    fired,
                    reason=NotifyReason.FIRED,
                    text=fire_text,
                    severity=severity,
                )
        elif not truth and prior.state is AlertState.FIRING:
            cleared = AlertStatus(
                AlertState.INACTIVE, now, None, now, prior.seq + 1, NotifyReason.RESOLVED
            )
            self.send(kind, symbol, cleared, reason=NotifyReason.RESOLVED, text=clear_text)
        elif not truth and prior.state is AlertState.PENDING:
            self.set(
                kind,
                symbol,
                AlertStatus(
                    AlertState.INACTIVE,
                    now,
                    None,
                    prior.last_notified,
                    prior.seq,
                    NotifyReason.CLEARED,
                ),
            )
        return prior


def feed_warnings(
    statuses: Mapping[str, Mapping[str, AlertStatus]],
    *,
    previous: BundleSnapshot | None,
    bundle: BundleSnapshot | None,
    now: datetime,
    feed: FeedContext,
) -> WarningResult:
    """Warnings for one poll (`bundle` is None when the poll failed)."""
    b = _Builder(statuses, now)
    if bundle is not None:
        for sym, snap in bundle.symbols.items():
            _symbol(
                b,
                sym,
                snap.status,
                previous=previous,
                bundle=bundle,
                feed=feed,
                age=snap.age_seconds(now),
            )
            # Kept in the store like the others, so a restart (cron, a new leader) does not
            # announce the same misconfiguration again.
            b.step(
                WarningKind.INVALID,
                sym,
                truth=snap.status is SymbolStatus.INVALID,
                hold=0,
                fire_text=f"{sym} is not a symbol BackQuant serves (supported: "
                f"{', '.join(SUPPORTED_SYMBOLS)}); check GEXBOT_SYMBOLS.",
                clear_text=f"{sym} is served now.",
            )
        for sym, status in statuses.get(WarningKind.INVALID.rule_id, {}).items():
            if sym not in bundle.symbols and status.state is not AlertState.INACTIVE:
                b.set(WarningKind.INVALID, sym, AlertStatus())  # no longer configured: forget
    since_ok = feed.last_success or feed.started_at
    down_for = (now - since_ok).total_seconds()
    last_error = f" Last error: {feed.failure_message}." if feed.failure_message else ""
    b.step(
        WarningKind.FEED_DOWN,
        ALL,
        truth=bundle is None and down_for > 3 * feed.interval,
        hold=0,
        fire_text=f"The BackQuant feed is down: no successful poll for {fmt_age(down_for)}."
        f"{last_error}",
        clear_text="The BackQuant feed is back.",
        severity=Severity.CRITICAL,
    )
    b.step(
        WarningKind.AUTH,
        ALL,
        truth=bundle is None and feed.failure_kind in ("auth", "forbidden"),
        hold=0,
        fire_text=(
            "BackQuant refused the API key: check GEXBOT_API_KEY (and the plan). Polling slows "
            f"down until it is fixed.{last_error}"
        ),
        clear_text="BackQuant accepts the API key again.",
        severity=Severity.CRITICAL,
    )
    return b.out


def _symbol(
    b: _Builder,
    sym: str,
    status: SymbolStatus,
    *,
    previous: BundleSnapshot | None,
    bundle: BundleSnapshot,
    feed: FeedContext,
    age: float | None,
) -> None:
    missing = status is SymbolStatus.MISSING
    prior = b.prior(WarningKind.MISSING, sym)
    gap = fmt_age((b.now - prior.since).total_seconds()) if prior.since else "a while"
    regime_note = ""
    now_sign = _regime_sign(bundle, sym)
    if prior.baseline is not None and now_sign is not None and now_sign != prior.baseline:
        was, now_ = ("above", "below") if prior.baseline > 0 else ("below", "above")
        regime_note = f" Regime changed during the gap: now {now_} HVL (was {was})."
    b.step(
        WarningKind.MISSING,
        sym,
        truth=missing,
        hold=feed.missing_after,
        fire_text=(
            f"{sym} has had no data upstream for {fmt_age(feed.missing_after)} (missing); its "
            "rules are paused until it returns."
        ),
        clear_text=f"{sym} is served again after {gap}; its rules resume.{regime_note}",
        baseline=_regime_sign(previous, sym),
    )
    b.step(
        WarningKind.STALE,
        sym,
        truth=status is SymbolStatus.STALE,
        hold=0,
        fire_text=(
            f"{sym} data is stale: computed {fmt_age(age)} ago (limit "
            f"{fmt_age(feed.stale_after)}); its rules are paused."
        ),
        clear_text=f"{sym} data is fresh again; its rules resume.",
    )
