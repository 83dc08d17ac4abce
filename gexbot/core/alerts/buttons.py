"""Buttons on an alert (pure): which an alert gets, what a press carries, and whether it acts.

A button carries an opaque token into the `alert_buttons` table and a one-letter action, never
the action's parameters (Telegram allows 64 bytes of `callback_data`): `gx1:TOKEN:s`. Whatever
a press claims beyond the token is ignored; the stored row says which alert it is about.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from gexbot.core.alerts.audience import Mute, Scope
from gexbot.core.language.durations import format_duration
from gexbot.core.language.model import Rule, is_personal

PREFIX = "gx1"
#: A button older than this answers "no longer current".
MAX_AGE = timedelta(days=7)
_DATA = re.compile(r"^gx1:([A-Za-z0-9_-]{16,32}):([a-z0-9]{1,3})$")


class Action(StrEnum):
    """What a button does; the value is what its data carries."""

    SNOOZE = "s"  # this rule for this symbol, one hour
    MUTE_4H = "m4"
    MUTE_1D = "m24"
    MUTE_TOMORROW = "mt"  # until tomorrow 08:00 UTC
    CHART = "c"
    LEVELS = "l"
    DELETE = "d"  # a personal alert only

    @property
    def label(self) -> str:
        """The button's caption."""
        return _LABELS[self]

    @property
    def mutes(self) -> bool:
        """True for the snooze and the mutes."""
        return self in _MUTING


_LABELS = {
    Action.SNOOZE: "Snooze 1h",
    Action.MUTE_4H: "Mute 4h",
    Action.MUTE_1D: "Mute 1d",
    Action.MUTE_TOMORROW: "Mute to 08:00",
    Action.CHART: "Chart",
    Action.LEVELS: "Levels",
    Action.DELETE: "Delete",
}
_MUTING = frozenset({Action.SNOOZE, Action.MUTE_4H, Action.MUTE_1D, Action.MUTE_TOMORROW})


def actions_for(rule_id: str) -> tuple[Action, ...]:
    """The buttons of an alert of `rule_id` (warnings get none)."""
    base = (
        Action.SNOOZE,
        Action.MUTE_4H,
        Action.MUTE_1D,
        Action.MUTE_TOMORROW,
        Action.CHART,
        Action.LEVELS,
    )
    return (*base, Action.DELETE) if is_personal(rule_id) else base


def button_data(token: str, action: Action) -> str:
    """What a button carries (at most 40 bytes)."""
    return f"{PREFIX}:{token}:{action.value}"


def parse_button_data(data: str) -> tuple[str, Action] | None:
    """The token and action of a press; None for anything else (forged, foreign, old)."""
    m = _DATA.fullmatch(data) if isinstance(data, str) and len(data) <= 64 else None
    if m is None:
        return None
    try:
        return m[1], Action(m[2])
    except ValueError:
        return None


def mute_until(action: Action, now: datetime) -> datetime:
    """When the mute of a muting action ends."""
    if action is Action.MUTE_TOMORROW:
        eight = now.replace(hour=8, minute=0, second=0, microsecond=0)
        return eight + timedelta(days=1)
    hours = {Action.SNOOZE: 1, Action.MUTE_4H: 4, Action.MUTE_1D: 24}[action]
    return now + timedelta(hours=hours)


def alert_mute(rule_id: str, symbol: str, until: datetime) -> Mute:
    """The mute a snooze sets: this rule for this symbol (a typed `mute` is the same kind)."""
    return Mute(Scope.ALERT, alert_target(rule_id, symbol), until)


def alert_target(rule_id: str, symbol: str) -> str:
    """How a rule-for-one-symbol mute names its target: `hvl-regime@BTCUSDT`."""
    return f"{rule_id}@{symbol}"


@dataclass(frozen=True, slots=True)
class StoredButton:
    """What the table says a token is about."""

    token: str
    alert_key: str
    rule_id: str
    symbol: str
    fingerprint: str  # the rule's definition when the alert was sent
    platform: str
    chat_id: str  # where the message was posted
    created_at: datetime


class Verdict(StrEnum):
    """What a press comes to, before anything is done."""

    ACT = "act"
    UNKNOWN = "unknown"  # no such token: forged, or pruned
    FOREIGN = "foreign"  # pressed in another chat or platform than the message's
    NOT_ALLOWED = "not-allowed"  # the user is not on the allow-list
    STALE = "stale"  # older than 7 days, or its rule changed or is gone
    NOT_HERE = "not-here"  # Delete on a rule-file alert


def judge(
    button: StoredButton | None,
    action: Action,
    *,
    platform: str,
    chat_id: str,
    allowed: bool,
    current_fingerprint: str | None,
    now: datetime,
) -> Verdict:
    """Whether a press acts. `current_fingerprint`: the rule's definition now (None: gone)."""
    if button is None:
        return Verdict.UNKNOWN
    if button.platform != platform or button.chat_id != chat_id:
        return Verdict.FOREIGN
    if not allowed:
        return Verdict.NOT_ALLOWED
    if now - button.created_at > MAX_AGE or current_fingerprint != button.fingerprint:
        return Verdict.STALE
    if action is Action.DELETE and not is_personal(button.rule_id):
        return Verdict.NOT_HERE
    return Verdict.ACT


#: What the presser is told when nothing is done.
REFUSALS = {
    Verdict.UNKNOWN: "This button is not one of gexbot's current alerts.",
    Verdict.FOREIGN: "This button belongs to another chat.",
    Verdict.NOT_ALLOWED: "You are not allowed to command this bot.",
    Verdict.STALE: "This alert is no longer current.",
    Verdict.NOT_HERE: "Only a personal alert can be deleted from its message.",
}


def done_line(action: Action, *, by: str, now: datetime, until: datetime | None = None) -> str:
    """What the message says was done: `Snoozed 1h by @ana, until 13:05 UTC`."""
    if action.mutes and until is not None:
        what = "Snoozed" if action is Action.SNOOZE else "Muted"
        span = format_duration((until - now).total_seconds())
        return f"{what} {span} by {by}, until {until.strftime('%H:%M UTC')}"
    if action is Action.DELETE:
        return f"Deleted by {by}"
    return f"{action.label} sent by request of {by}"


def rule_fingerprint(rule: Rule) -> str:
    """The rule's definition, hashed: a button on an alert of a rule since changed is stale."""
    return hashlib.sha256(repr(replace(rule, location=None)).encode()).hexdigest()[:32]
