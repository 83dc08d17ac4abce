"""Who hears an alert: the chats' mutes and subscriptions, as inputs to the decision.

The store reads them once per cycle; `decide` takes `muted` and `events_for` adds the
subscribers, so what a mute or a subscription does is decided (and tested) in the core.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Scope(StrEnum):
    """What a mute or a subscription covers."""

    RULE = "rule"
    SYMBOL = "symbol"
    ALERT = "alert"  # one rule for one symbol (`rule-id@SYMBOL`): a button's snooze
    ALL = "all"


@dataclass(frozen=True, slots=True)
class Mute:
    """A silenced rule, symbol or everything, until a time."""

    scope: Scope
    target: str
    until: datetime
    by: str | None = field(default=None, compare=False)  # who set it (a chat user, a button)

    def covers(self, rule_id: str, symbol: str) -> bool:
        """True when this mute silences the rule+symbol."""
        return (
            self.scope is Scope.ALL
            or (self.scope is Scope.RULE and self.target == rule_id)
            or (self.scope is Scope.SYMBOL and self.target == symbol)
            or (self.scope is Scope.ALERT and self.target == f"{rule_id}@{symbol}")
        )


@dataclass(frozen=True, slots=True)
class Subscription:
    """A chat that receives a rule's or a symbol's alerts directly."""

    platform: str
    chat_id: str
    scope: Scope  # rule | symbol
    target: str

    @property
    def channel(self) -> str:
        """The outbox channel name of this chat: `telegram:123` or `slack:C0123`."""
        return f"{self.platform}:{self.chat_id}"

    def covers(self, rule_id: str, symbol: str) -> bool:
        """True when this chat asked for the rule's or the symbol's alerts."""
        return (self.scope is Scope.RULE and self.target == rule_id) or (
            self.scope is Scope.SYMBOL and self.target == symbol
        )


@dataclass(frozen=True, slots=True)
class Audience:
    """The mutes in force and the subscriptions, as one cycle sees them."""

    mutes: Sequence[Mute] = field(default_factory=tuple)
    subscriptions: Sequence[Subscription] = field(default_factory=tuple)

    def muted(self, rule_id: str, symbol: str) -> bool:
        """True when some mute covers the rule+symbol."""
        # Asked for every pair a cycle decides (thousands with personal alerts): no mutes, the
        # usual case, answers without a loop.
        return bool(self.mutes) and any(m.covers(rule_id, symbol) for m in self.mutes)

    def subscribers(self, rule_id: str, symbol: str) -> tuple[str, ...]:
        """Channels of the chats subscribed to the rule or the symbol."""
        if not self.subscriptions:
            return ()
        return tuple(s.channel for s in self.subscriptions if s.covers(rule_id, symbol))


RULES_ONLY = Audience()  # no mutes, no subscriptions: the rule files alone decide and route
