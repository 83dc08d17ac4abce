"""The rule language as frozen core types (what `rulefile.py` parses YAML into)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from gexbot.core.market.snapshot import Level

PERSONAL_PREFIX = "#"  # personal alerts' rule ids are `#12`; YAML rule ids cannot start with it


def is_personal(rule_id: str) -> bool:
    """True for a personal alert's rule id (`#12`), as opposed to a YAML rule's."""
    return rule_id.startswith(PERSONAL_PREFIX)


class ConditionKind(StrEnum):
    """What a rule watches. Events fire once per occurrence; states fire on becoming true."""

    CROSSES = "crosses"
    NEAR = "near"
    ABOVE = "above"
    BELOW = "below"
    OUTSIDE = "outside"
    MOVED = "moved"
    ROLLS_OFF = "rolls_off"  # a wall's gamma settling at the next 08:00 UTC (chains only)

    @property
    def is_event(self) -> bool:
        """True for conditions that fire and re-baseline (crosses, moved), not stay true."""
        return self in (ConditionKind.CROSSES, ConditionKind.MOVED)


class Direction(StrEnum):
    """Which way a cross must go to fire."""

    UP = "up"
    DOWN = "down"
    ANY = "any"


class Severity(StrEnum):
    """How loud an alert is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Band(StrEnum):
    """An expected-move band for `outside`."""

    ONE_SD = "expected_move_1sd"
    TWO_SD = "expected_move_2sd"

    @property
    def bounds(self) -> tuple[Level, Level]:
        """(upper, lower) levels of the band."""
        if self is Band.ONE_SD:
            return Level.EM_UPPER_1SD, Level.EM_LOWER_1SD
        return Level.EM_UPPER_2SD, Level.EM_LOWER_2SD


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition with its options. `level` is None when `threshold` (a number) is used."""

    kind: ConditionKind
    level: Level | None = None
    threshold: float | None = None
    band: Band | None = None
    direction: Direction = Direction.ANY
    buffer_pct: float = 0.0
    within_pct: float | None = None
    within_abs: float | None = None
    rearm_pct: float | None = None
    rearm_abs: float | None = None
    by_pct: float | None = None
    by_abs: float | None = None
    share_pct: float | None = None  # rolls_off: the share of the wall's gamma, in %
    within_s: float | None = None  # rolls_off: how soon the settlement must be, in seconds

    @property
    def subject(self) -> str:
        """What the condition is about, as written in the rule (`hvl`, `70000`, a band)."""
        if self.band is not None:
            return self.band.value
        if self.level is not None:
            return self.level.value
        return f"{self.threshold:g}"


@dataclass(frozen=True, slots=True)
class Location:
    """Where something was written: file, 1-based line and column."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule, defaults applied."""

    id: str
    condition: Condition
    symbols: tuple[str, ...] | None  # None: every served symbol
    notify: tuple[str, ...]
    cooldown: float = 0.0
    hold: float = 0.0  # `for:` in the file
    repeat: float | None = None
    resolve: bool = False
    severity: Severity = Severity.WARNING
    message: str | None = None
    chart: bool = False  # attach the levels chart to this rule's alerts
    once: bool = False  # a personal alert deleted after its first alert
    location: Location | None = field(default=None, compare=False)

    def applies_to(self, symbol: str) -> bool:
        """True when this rule watches `symbol`."""
        return self.symbols is None or symbol in self.symbols


#: Discord ids (channels, users, applications): snowflakes, 64-bit integers as 17–20 digits.
SNOWFLAKE = re.compile(r"^[0-9]{17,20}$")


class ChannelKind(StrEnum):
    """Where a channel delivers."""

    SLACK = "slack"
    TELEGRAM = "telegram"
    TERMINAL = "terminal"
    WEBHOOK = "webhook"  # a signed JSON POST to GEXBOT_WEBHOOK_<NAME>_URL
    DISCORD = "discord"


@dataclass(frozen=True, slots=True)
class Channel:
    """A named destination; tokens stay in the environment."""

    name: str
    kind: ChannelKind
    # Slack channel name or id, Telegram chat id, Discord channel id, "terminal", a webhook's NAME
    target: str


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every rule file merged: channels, the warnings route and the rules."""

    channels: dict[str, Channel]
    warnings_notify: tuple[str, ...]
    rules: tuple[Rule, ...]

    def symbols_covered(self, universe: list[str]) -> list[str]:
        """Symbols of `universe` watched by at least one rule."""
        return [s for s in universe if any(r.applies_to(s) for r in self.rules)]


def webhook_env(name: str, part: str) -> str:
    """The variable that configures webhook `name`: `GEXBOT_WEBHOOK_<NAME>_<PART>`, with the
    name upper-cased and dashes as underscores (`desk-ops`, URL → GEXBOT_WEBHOOK_DESK_OPS_URL)."""
    return f"GEXBOT_WEBHOOK_{webhook_key(name)}_{part.upper()}"


def webhook_key(name: str) -> str:
    """A webhook's name as it appears in its variables (`desk-ops` → `DESK_OPS`)."""
    return name.upper().replace("-", "_")
