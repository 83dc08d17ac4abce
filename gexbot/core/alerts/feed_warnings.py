"""Built-in feed warnings: missing, invalid, stale, feed down, authentication.

They use the same statuses, lifecycle vocabulary and outbox as rule alerts, so they are
de-duplicated and durable too: a warning fires once, and one recovery notice follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from gexbot.core.alerts.events import ALL_SYMBOLS, AlertEvent, WarningKind, warning_event
from gexbot.core.alerts.states import AlertState, AlertStatus, NotifyReason, StatusKey
from gexbot.core.language.model import Severity
from gexbot.core.market.snapshot import (
    BundleSnapshot,
    Level,
    Regime,
    SymbolSnapshot,
    SymbolStatus,
    regime,
)
from gexbot.core.market.symbols import SUPPORTED_SYMBOLS
from gexbot.core.present.format import fmt_age, fmt_price
from gexbot.core.present.labels import level_label, source_name


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

    statuses: dict[StatusKey, AlertStatus] = field(default_factory=dict)
    events: list[AlertEvent] = field(default_factory=list)


def _regime_sign(bundle: BundleSnapshot | None, symbol: str) -> float | None:
    snap = bundle.symbols.get(symbol) if bundle is not None else None
    if snap is None or not snap.usable:
        return None
    r = regime(snap.spot, snap.level(Level.HVL))
    return {Regime.ABOVE_HVL: 1.0, Regime.BELOW_HVL: -1.0}.get(r)


@dataclass(frozen=True, slots=True)
class WarningStep:
    """One warning's next status and the reason, named like an alert's."""

    status: AlertStatus
    reason: NotifyReason  # UNCHANGED, PENDING, FIRED, CLEARED or RESOLVED


def step_warning(
    prior: AlertStatus | None,
    *,
    truth: bool,
    now: datetime,
    hold: float,
    baseline: float | None = None,
) -> WarningStep:
    """The warnings' lifecycle: inactive → pending → firing after `hold`, one notice on clearing.

    A second machine beside `decide`, with the same states and reasons, because a warning
    differs from a rule in three ways: a problem seen at start fires (there is no first-sight
    baseline: a feed down at start is news); `since` stays the time the problem began, so the
    recovery can say how long it lasted; and there is no cooldown, reminder or mute. `baseline`
    is remembered from the moment the problem begins (the missing warning keeps the regime).
    """
    prior = prior or AlertStatus()
    if truth and prior.state is AlertState.INACTIVE:
        pending = AlertStatus(
            AlertState.PENDING, now, baseline, prior.last_notified, prior.seq, NotifyReason.PENDING
        )
        if hold > 0:
            return WarningStep(pending, NotifyReason.PENDING)
        prior = pending
    if truth and prior.state is AlertState.PENDING:
        since = prior.since or now
        if (now - since).total_seconds() < hold:
            return WarningStep(prior, NotifyReason.UNCHANGED)
        fired = AlertStatus(
            AlertState.FIRING, since, prior.baseline, now, prior.seq + 1, NotifyReason.FIRED
        )
        return WarningStep(fired, NotifyReason.FIRED)
    if not truth and prior.state is AlertState.FIRING:
        cleared = AlertStatus(
            AlertState.INACTIVE, now, None, now, prior.seq + 1, NotifyReason.RESOLVED
        )
        return WarningStep(cleared, NotifyReason.RESOLVED)
    if not truth and prior.state is AlertState.PENDING:
        cleared = AlertStatus(
            AlertState.INACTIVE, now, None, prior.last_notified, prior.seq, NotifyReason.CLEARED
        )
        return WarningStep(cleared, NotifyReason.CLEARED)
    return WarningStep(prior, NotifyReason.UNCHANGED)


class _Builder:
    """Collects one poll's warning statuses and events."""

    def __init__(self, statuses: Mapping[str, Mapping[str, AlertStatus]], now: datetime) -> None:
        self._statuses = statuses
        self.now = now
        self.out = WarningResult()

    def prior(self, kind: WarningKind, symbol: str) -> AlertStatus | None:
        return self._statuses.get(kind.rule_id, {}).get(symbol)

    def forget(self, kind: WarningKind, symbol: str) -> None:
        self.out.statuses[(kind.rule_id, symbol)] = AlertStatus()

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
    ) -> None:
        step = step_warning(
            self.prior(kind, symbol), truth=truth, now=self.now, hold=hold, baseline=baseline
        )
        if step.reason is NotifyReason.UNCHANGED:
            return
        self.out.statuses[(kind.rule_id, symbol)] = step.status
        if step.reason.sends:
            text = clear_text if step.reason is NotifyReason.RESOLVED else fire_text
            self.out.events.append(
                warning_event(
                    kind,
                    symbol,
                    seq=step.status.seq,
                    reason=step.reason,
                    now=self.now,
                    text=text,
                    severity=severity,
                )
            )


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
                unavailable=snap.unavailable,
                previous=previous,
                bundle=bundle,
                feed=feed,
                age=snap.age_seconds(now),
            )
            _sources(b, sym, snap)
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
                b.forget(WarningKind.INVALID, sym)  # no longer configured
    since_ok = feed.last_success or feed.started_at
    down_for = (now - since_ok).total_seconds()
    last_error = f" Last error: {feed.failure_message}." if feed.failure_message else ""
    b.step(
        WarningKind.FEED_DOWN,
        ALL_SYMBOLS,
        truth=bundle is None and down_for > 3 * feed.interval,
        hold=0,
        fire_text=f"The BackQuant feed is down: no successful poll for {fmt_age(down_for)}."
        f"{last_error}",
        clear_text="The BackQuant feed is back.",
        severity=Severity.CRITICAL,
    )
    b.step(
        WarningKind.AUTH,
        ALL_SYMBOLS,
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
    unavailable: str | None,
    previous: BundleSnapshot | None,
    bundle: BundleSnapshot,
    feed: FeedContext,
    age: float | None,
) -> None:
    missing = status is SymbolStatus.MISSING
    prior = b.prior(WarningKind.MISSING, sym) or AlertStatus()
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
            f"{sym} is {unavailable}; its rules are paused until it is."
            if unavailable
            else f"{sym} has had no data upstream for {fmt_age(feed.missing_after)} (missing); "
            "its rules are paused until it returns."
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
            f"{sym} data is suspect: computed {fmt_age(-age)} ahead of this machine's clock "
            "(upstream's clock, or ours, is wrong); its rules are paused."
            if age is not None and age < 0
            else f"{sym} data is stale: computed {fmt_age(age)} ago (limit "
            f"{fmt_age(feed.stale_after)}); its rules are paused."
        ),
        clear_text=f"{sym} data is fresh again; its rules resume.",
    )


def _sources(b: _Builder, sym: str, snap: SymbolSnapshot) -> None:
    """`both`: the fallback to the chains, and the cross-check's disagreements."""
    b.step(
        WarningKind.SOURCE_FALLBACK,
        sym,
        truth=snap.fallback is not None,
        hold=0,
        fire_text=(
            f"{sym}: BackQuant {snap.fallback}; its levels come from the "
            f"{source_name(snap)} (std positioning) until BackQuant serves it again."
        ),
        clear_text=f"{sym} is served by BackQuant again; its levels are BackQuant's.",
    )
    agreement = snap.agreement
    if agreement is None:  # not checked yet (or this replica has not): the last word stands
        return
    apart = agreement.disagreeing
    details = "; ".join(
        f"{level_label(d.level.value)} {fmt_price(d.backquant)} (BackQuant) vs "
        f"{fmt_price(d.chains)} (chains)"
        for d in apart
    )
    b.step(
        WarningKind.LEVELS_DISAGREE,
        sym,
        truth=bool(apart),
        hold=0,
        fire_text=(
            f"{sym}: BackQuant's std levels and the venues' chains disagree, "
            f"{agreement.after} checks running: {details}. One of the two is wrong; check "
            "before acting on these levels."
        ),
        clear_text=f"{sym}: BackQuant's std levels and the venues' chains agree again.",
    )
