"""Alert states and reasons: the names every decision is stored and logged by."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class AlertState(StrEnum):
    """Where a rule+symbol stands. Stored and logged by name."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


class NotifyReason(StrEnum):
    """Why a decision was taken; `sends` says whether a message goes out."""

    FIRED = "fired"  # became true (or an event happened): alert
    REPEAT = "repeat"  # still true after `repeat`: remind
    RESOLVED = "resolved"  # cleared, and the rule asks for `resolve` notices
    BASELINE = "baseline"  # first sight of this rule+symbol: remember, do not fire
    PENDING = "pending"  # true, but not yet for `for`
    CLEARED = "cleared"  # went away while pending: nothing to say
    REARMED = "rearmed"  # went away after firing, no resolve notice asked
    FILTERED = "filtered"  # a cross the other way than `direction`: re-baselined quietly
    REBASELINED = "rebaselined"  # the levels' source changed (BackQuant ↔ chains): not an alert
    COOLDOWN = "cooldown"  # would alert, but the last alert is younger than `cooldown`
    SILENCED = "silenced"  # would alert, but muted (recorded, not sent)
    UNKNOWN = "unknown"  # data missing, stale or null: state kept as it was
    UNCHANGED = "unchanged"  # nothing new

    @property
    def sends(self) -> bool:
        """True when this decision produces a message."""
        return self in _SENDING


_SENDING = frozenset({NotifyReason.FIRED, NotifyReason.REPEAT, NotifyReason.RESOLVED})
NOTIFIED = frozenset({NotifyReason.FIRED, NotifyReason.REPEAT})


@dataclass(frozen=True, slots=True)
class AlertStatus:
    """What is remembered per rule+symbol between cycles (persisted by the store)."""

    state: AlertState = AlertState.INACTIVE
    since: datetime | None = None  # when the current state began
    baseline: float | None = None  # crosses: the side (+1/-1); moved: the level at the last alert
    last_notified: datetime | None = None
    seq: int = 0  # notification sequence: part of each message's de-duplication key
    last_reason: NotifyReason | None = None


StatusKey = tuple[str, str]  # (rule id, symbol): how a cycle names the statuses it changed


class StatusBook(dict[str, dict[str, AlertStatus]]):
    """Every rule+symbol's status as rule id → symbol → status: the one shape statuses take.

    The store loads it, evaluation reads it per rule, and a cycle's changes (keyed by
    `StatusKey`, as they are saved) go back in through `apply`, never merged by hand.
    """

    def status(self, rule_id: str, symbol: str) -> AlertStatus | None:
        """The status of one rule+symbol (None: never seen)."""
        mine = self.get(rule_id)
        return mine.get(symbol) if mine is not None else None

    def apply(self, changes: Mapping[StatusKey, AlertStatus]) -> None:
        """Take in a cycle's changed statuses."""
        for (rule_id, symbol), status in changes.items():
            self.setdefault(rule_id, {})[symbol] = status
