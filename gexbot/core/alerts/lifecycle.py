"""The alert lifecycle: `decide` turns an observation and the prior status into a decision.

The vocabulary is Prometheus's: a rule+symbol is inactive, pending (true, waiting for `for`) or
firing. Every decision names its reason, and only some reasons send a message.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from gexbot.core.alerts.evaluate import Observation, Truth
from gexbot.core.alerts.states import NOTIFIED, AlertState, AlertStatus, NotifyReason
from gexbot.core.language.model import ConditionKind, Direction, Rule

_EVENTS = frozenset(k for k in ConditionKind if k.is_event)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one rule+symbol in one cycle."""

    status: AlertStatus
    reason: NotifyReason
    observation: Observation

    @property
    def notify(self) -> bool:
        """True when a message should be sent."""
        return self.reason.sends


def _in_cooldown(prior: AlertStatus, rule: Rule, now: datetime) -> bool:
    return (
        rule.cooldown > 0
        and prior.last_notified is not None
        and (now - prior.last_notified).total_seconds() < rule.cooldown
    )


def _send(
    prior: AlertStatus, state: AlertState, now: datetime, reason: NotifyReason, **kw: float | None
) -> AlertStatus:
    return AlertStatus(
        state=state,
        since=now if state is not prior.state else prior.since,
        baseline=kw.get("baseline", prior.baseline),
        last_notified=now,
        seq=prior.seq + 1,
        last_reason=reason,
    )


def decide(
    prior: AlertStatus | None,
    obs: Observation,
    now: datetime,
    rule: Rule,
    *,
    muted: bool = False,
    rebase: bool = False,
) -> Decision:
    """The next status of a rule+symbol and the reason, for one observation at `now`.

    A muted rule+symbol is decided as usual (its `for`, cooldown and re-arm keep counting), but
    an alert or reminder it would send is recorded as SILENCED instead: nothing is sent, and
    no resolve notice or reminder follows an alert nobody saw.

    `rebase`: the symbol's levels changed source since the last cycle (BackQuant ↔ the chains),
    so a change seen now may be the two sources' difference, not the market's. Any change is
    taken in as a first sight would be (REBASELINED): remembered, never sent.
    """
    if rebase and obs.truth is not Truth.UNKNOWN and prior is not None:
        return _rebaseline(prior, obs, now, rule)
    decision = _decide(prior, obs, now, rule)
    if muted and decision.reason in NOTIFIED:
        status = replace(decision.status, last_reason=NotifyReason.SILENCED)
        return Decision(status, NotifyReason.SILENCED, obs)
    return decision


def _decide(prior: AlertStatus | None, obs: Observation, now: datetime, rule: Rule) -> Decision:
    if obs.truth is Truth.UNKNOWN:
        return Decision(prior or AlertStatus(), NotifyReason.UNKNOWN, obs)
    event = rule.condition.kind in _EVENTS
    if prior is None or (event and prior.baseline is None):
        return _first_sight(obs, now, rule)
    if event:
        return _event(prior, obs, now, rule)
    return _state(prior, obs, now, rule)


def _rebaseline(prior: AlertStatus, obs: Observation, now: datetime, rule: Rule) -> Decision:
    if rule.condition.kind in _EVENTS:
        state, baseline = AlertState.INACTIVE, obs.baseline
    else:
        state = AlertState.FIRING if obs.truth is Truth.TRUE else AlertState.INACTIVE
        baseline = prior.baseline
    if state is prior.state and baseline == prior.baseline:
        return Decision(prior, NotifyReason.UNCHANGED, obs)
    status = AlertStatus(
        state=state,
        since=now if state is not prior.state else prior.since,
        baseline=baseline,
        last_notified=prior.last_notified,
        seq=prior.seq,
        last_reason=NotifyReason.REBASELINED,
    )
    return Decision(status, NotifyReason.REBASELINED, obs)


def _first_sight(obs: Observation, now: datetime, rule: Rule) -> Decision:
    if rule.condition.kind in _EVENTS:
        status = AlertStatus(since=now, baseline=obs.baseline, last_reason=NotifyReason.BASELINE)
    else:
        state = AlertState.FIRING if obs.truth is Truth.TRUE else AlertState.INACTIVE
        status = AlertStatus(state=state, since=now, last_reason=NotifyReason.BASELINE)
    return Decision(status, NotifyReason.BASELINE, obs)


def _quiet(
    prior: AlertStatus,
    state: AlertState,
    now: datetime,
    reason: NotifyReason,
    baseline: float | None = None,
    *,
    rebase: bool = False,
) -> AlertStatus:
    # Built field by field: `dataclasses.replace` costs 3x more, at every status change.
    return AlertStatus(
        state=state,
        since=now if state is not prior.state else prior.since,
        baseline=baseline if rebase else prior.baseline,
        last_notified=prior.last_notified,
        seq=prior.seq,
        last_reason=reason,
    )


def _event(prior: AlertStatus, obs: Observation, now: datetime, rule: Rule) -> Decision:
    """crosses / moved: true means "differs from the baseline"; firing re-baselines."""
    if obs.truth is Truth.FALSE:
        if prior.state is AlertState.PENDING:
            status = _quiet(prior, AlertState.INACTIVE, now, NotifyReason.CLEARED)
            return Decision(status, NotifyReason.CLEARED, obs)
        return Decision(prior, NotifyReason.UNCHANGED, obs)
    wanted = rule.condition.direction
    if wanted is not Direction.ANY and obs.direction is not wanted:
        status = _quiet(
            prior, AlertState.INACTIVE, now, NotifyReason.FILTERED, obs.baseline, rebase=True
        )
        return Decision(status, NotifyReason.FILTERED, obs)
    if rule.hold > 0:
        if prior.state is not AlertState.PENDING:
            status = _quiet(prior, AlertState.PENDING, now, NotifyReason.PENDING)
            return Decision(status, NotifyReason.PENDING, obs)
        if prior.since is not None and (now - prior.since).total_seconds() < rule.hold:
            return Decision(prior, NotifyReason.UNCHANGED, obs)
    if _in_cooldown(prior, rule, now):
        status = _quiet(
            prior, AlertState.INACTIVE, now, NotifyReason.COOLDOWN, obs.baseline, rebase=True
        )
        return Decision(status, NotifyReason.COOLDOWN, obs)
    status = _send(
        prior, AlertState.INACTIVE, now, NotifyReason.FIRED, baseline=obs.baseline, rebase=True
    )
    return Decision(status, NotifyReason.FIRED, obs)


def _state(prior: AlertStatus, obs: Observation, now: datetime, rule: Rule) -> Decision:
    """near / above / below / outside: fire on becoming true, re-arm when false."""
    if obs.truth is Truth.FALSE:
        if prior.state is AlertState.PENDING:
            status = _quiet(prior, AlertState.INACTIVE, now, NotifyReason.CLEARED)
            return Decision(status, NotifyReason.CLEARED, obs)
        if prior.state is AlertState.FIRING:
            if rule.resolve and prior.last_reason in NOTIFIED:
                status = _send(prior, AlertState.INACTIVE, now, NotifyReason.RESOLVED)
                return Decision(status, NotifyReason.RESOLVED, obs)
            status = _quiet(prior, AlertState.INACTIVE, now, NotifyReason.REARMED)
            return Decision(status, NotifyReason.REARMED, obs)
        return Decision(prior, NotifyReason.UNCHANGED, obs)
    if prior.state is AlertState.FIRING:
        due = (
            rule.repeat is not None
            and prior.last_reason in NOTIFIED
            and prior.last_notified is not None
            and (now - prior.last_notified).total_seconds() >= rule.repeat
        )
        if due and not _in_cooldown(prior, rule, now):
            status = _send(prior, AlertState.FIRING, now, NotifyReason.REPEAT)
            return Decision(status, NotifyReason.REPEAT, obs)
        return Decision(prior, NotifyReason.UNCHANGED, obs)
    if rule.hold > 0:
        if prior.state is AlertState.INACTIVE:
            status = _quiet(prior, AlertState.PENDING, now, NotifyReason.PENDING)
            return Decision(status, NotifyReason.PENDING, obs)
        if prior.since is not None and (now - prior.since).total_seconds() < rule.hold:
            return Decision(prior, NotifyReason.UNCHANGED, obs)
    if _in_cooldown(prior, rule, now):
        status = _quiet(prior, AlertState.FIRING, now, NotifyReason.COOLDOWN)
        return Decision(status, NotifyReason.COOLDOWN, obs)
    status = _send(prior, AlertState.FIRING, now, NotifyReason.FIRED)
    return Decision(status, NotifyReason.FIRED, obs)
