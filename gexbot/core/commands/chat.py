"""Chat commands: parsing what a trader types, and the text of the replies (pure).

Telegram (`/levels btc`) and Slack (`/gex levels btc`, `@gexbot levels btc`) share this parser.
Input is bounded and validated here, so nothing typed in a chat reaches a query, a template or
a log line as it was typed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gexbot.core.alerts.audience import Scope
from gexbot.core.language.durations import format_duration, parse_duration
from gexbot.core.market.snapshot import Level, SymbolSnapshot, SymbolStatus, distance_pct, regime
from gexbot.core.market.symbols import MAX_SYMBOLS_PER_REQUEST, SUPPORTED_SYMBOLS, normalize_symbol
from gexbot.core.personal.grammar import (
    AlertRequest,
    AlertSyntaxError,
    PersonalAlert,
    alert_id_of,
    parse_alert,
)
from gexbot.core.present.format import fmt_age, fmt_pct, fmt_price
from gexbot.core.present.labels import LABELS, REGIME_TEXT
from gexbot.core.present.provenance import agreement_line, chain_line, source_line

MAX_INPUT = 200  # characters of a command line we read at all
MAX_MUTE = 7 * 86400.0


class CommandName(StrEnum):
    """What a chat can ask."""

    LEVELS = "levels"
    STATUS = "status"
    RULES = "rules"
    MUTE = "mute"
    UNMUTE = "unmute"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    ALERT = "alert"
    ALERTS = "alerts"
    UNALERT = "unalert"
    HELP = "help"


DESCRIPTIONS: dict[CommandName, str] = {
    CommandName.LEVELS: "levels [SYMBOL…] — current GEX levels (BTC, ETH, SOL, HYPE)",
    CommandName.STATUS: "status — feed, symbols and active mutes",
    CommandName.RULES: "rules — the alert rules in force",
    CommandName.MUTE: "mute RULE|SYMBOL|RULE@SYMBOL|all DURATION — silence alerts (30m, 2h, 1d)",
    CommandName.UNMUTE: "unmute RULE|SYMBOL|RULE@SYMBOL|all — end a mute",
    CommandName.SUBSCRIBE: "subscribe RULE|SYMBOL — get those alerts in this chat",
    CommandName.UNSUBSCRIBE: "unsubscribe RULE|SYMBOL — stop them",
    CommandName.ALERT: "alert SYMBOL CONDITION — your own alert, e.g. alert btc crosses hvl",
    CommandName.ALERTS: "alerts — this chat's own alerts",
    CommandName.UNALERT: "unalert ID|all — delete this chat's alert #ID, or all of them",
    CommandName.HELP: "help — this list",
}


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command."""

    name: CommandName
    symbols: tuple[str, ...] = ()
    scope: Scope | None = None
    target: str = ""
    duration: float | None = None
    alert: AlertRequest | None = None  # alert
    alert_id: int | None = None  # unalert ID (None with target "all")


class CommandError(ValueError):
    """A one-line usage hint for the person who typed the command."""


def usage(name: CommandName) -> str:
    """The usage line of a command."""
    return f"Usage: {DESCRIPTIONS[name]}"


def _target(
    token: str, rule_ids: Iterable[str], universe: Sequence[str], *, allow_all: bool
) -> tuple[Scope, str]:
    ids = set(rule_ids)
    if allow_all and token.lower() == "all":
        return Scope.ALL, "all"
    symbol = normalize_symbol(token)
    if symbol in universe:
        return Scope.SYMBOL, symbol
    rule, at, sym = token.partition("@")
    if at and rule.lower() in ids and normalize_symbol(sym) in universe:
        return Scope.ALERT, f"{rule.lower()}@{normalize_symbol(sym)}"  # what a snooze button sets
    if token.lower() in ids:
        return Scope.RULE, token.lower()
    if token.startswith("#"):
        raise CommandError(f"This chat has no alert {token[:20]}. See /alerts.")
    known = [*sorted(ids), *universe]
    hint = difflib.get_close_matches(token.lower(), [k.lower() for k in known], n=1)
    tail = f" Did you mean {hint[0]}?" if hint else ""
    raise CommandError(f"Unknown rule or symbol “{token[:40]}”.{tail} See /rules.")


def parse_command(
    text: str, *, rule_ids: Iterable[str], universe: Sequence[str] = SUPPORTED_SYMBOLS
) -> Command:
    """Parse `levels btc`, `/mute hvl-regime 2h`, `@gexbot status`… into a Command."""
    if len(text) > MAX_INPUT:
        raise CommandError(f"That is too long ({len(text)} characters). Try /help.")
    words = text.strip().split()
    while words and (words[0].startswith("@") or words[0].startswith("<@")):
        words = words[1:]  # a mention of the bot itself
    if not words:
        return Command(CommandName.HELP)
    head = words[0].lstrip("/").split("@")[0].lower()  # `/levels@gexbot_bot` in groups
    args = words[1:]
    try:
        name = CommandName(head)
    except ValueError:
        names = ", ".join(n.value for n in CommandName)
        raise CommandError(f"Unknown command “{head[:30]}”. Commands: {names}.") from None
    if name is CommandName.LEVELS:
        if len(args) > MAX_SYMBOLS_PER_REQUEST:
            raise CommandError(f"At most {MAX_SYMBOLS_PER_REQUEST} symbols at a time.")
        return Command(name, symbols=tuple(dict.fromkeys(normalize_symbol(a) for a in args)))
    if name in (CommandName.STATUS, CommandName.RULES, CommandName.HELP, CommandName.ALERTS):
        return Command(name)
    if name is CommandName.ALERT:
        if not args:
            raise CommandError(
                "Usage: alert SYMBOL CONDITION [for DURATION] [cooldown DURATION] [once], e.g. "
                "alert btc crosses hvl, alert eth near cr 0.5%, alert sol below 150 once"
            )
        try:
            request = parse_alert(" ".join(args), universe=universe)
        except AlertSyntaxError as exc:
            raise CommandError(str(exc)) from None
        return Command(name, alert=request)
    if name is CommandName.UNALERT:
        if len(args) != 1:
            raise CommandError(usage(name))
        if args[0].lower() == "all":
            return Command(name, target="all")
        alert_id = alert_id_of(args[0])
        if alert_id is None:
            raise CommandError(
                f"“{args[0][:20]}” is not an alert id: "
                "write unalert #12 (see /alerts) or unalert all."
            )
        return Command(name, target=f"#{alert_id}", alert_id=alert_id)
    if name is CommandName.MUTE:
        if len(args) != 2:
            raise CommandError(usage(name))
        scope, target = _target(args[0], rule_ids, universe, allow_all=True)
        try:
            seconds = parse_duration(args[1])
        except ValueError:
            raise CommandError(f"Bad duration “{args[1][:20]}”: write 30m, 2h or 1d.") from None
        if not 0 < seconds <= MAX_MUTE:
            raise CommandError("A mute lasts between 1 second and 7 days.")
        return Command(name, scope=scope, target=target, duration=seconds)
    if len(args) != 1:
        raise CommandError(usage(name))
    allow_all = name is CommandName.UNMUTE
    scope, target = _target(args[0], rule_ids, universe, allow_all=allow_all)
    return Command(name, scope=scope, target=target)


# -- replies ---------------------------------------------------------------------------------


def help_text() -> str:
    """Every command, one per line."""
    return "gexbot commands:\n" + "\n".join(f"• {d}" for d in DESCRIPTIONS.values())


#: The levels a reply shows, top down (the expected move's 2σ bounds are left to the chart).
LEVEL_ROWS: tuple[Level, ...] = tuple(
    level for level in LABELS if level not in (Level.EM_UPPER_2SD, Level.EM_LOWER_2SD)
)


def levels_reply(snap: SymbolSnapshot, now: datetime) -> str:
    """A compact monospace table of one symbol's levels (null levels left out)."""
    if snap.status is SymbolStatus.INVALID:
        return f"{snap.symbol}: not supported. Symbols: {', '.join(SUPPORTED_SYMBOLS)}."
    if snap.status is SymbolStatus.MISSING or snap.spot is None:
        return f"{snap.symbol}: {snap.unavailable or 'no data upstream right now'}."
    reg = regime(snap.spot, snap.level(Level.HVL))
    regime_text = REGIME_TEXT[reg]
    stale = " STALE" if snap.status is SymbolStatus.STALE else ""
    lines = [
        f"{snap.symbol}  spot {fmt_price(snap.spot)}  {regime_text}",
        f"data age {fmt_age(snap.age_seconds(now))}{stale}",
    ]
    if snap.from_chains or snap.agreement is not None:
        lines.append(source_line(snap))
    for extra in (chain_line(snap), agreement_line(snap)):
        if extra is not None:
            lines.append(extra)
    for level in LEVEL_ROWS:
        value = snap.level(level)
        if value is None:
            continue
        label = LABELS[level].title(short=True)
        lines.append(
            f"{label:<13}{fmt_price(value):>11} {fmt_pct(distance_pct(value, snap.spot)):>8}"
        )
    return "\n".join(lines)


def describe_scope(scope: Scope, target: str) -> str:
    """`rule hvl-regime`, `BTCUSDT`, `everything`."""
    if scope is Scope.ALL:
        return "everything"
    if scope is Scope.ALERT:
        rule, _, symbol = target.partition("@")
        return f"rule {rule} for {symbol}"
    return f"rule {target}" if scope is Scope.RULE else target


def mute_reply(scope: Scope, target: str, seconds: float) -> str:
    """Confirmation of a mute."""
    return (
        f"Muted {describe_scope(scope, target)} for {format_duration(seconds)}. "
        "Alerts are recorded, not sent."
    )


def alerts_reply(alerts: Sequence[PersonalAlert], now: datetime) -> str:
    """This chat's personal alerts, one per line, with when each last fired."""
    if not alerts:
        return "This chat has no alerts. Make one: /alert btc crosses hvl"
    lines = [f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''} in this chat:"]
    for a in alerts:
        fired = (
            f"last fired {fmt_age((now - a.last_fired).total_seconds())} ago"
            if a.last_fired is not None
            else "not fired yet"
        )
        paused = f" · PAUSED: {a.paused}" if a.paused else ""
        lines.append(f"• {a.rule_id} {a.request.describe()} · {fired}{paused}")
    return "\n".join(lines)
