"""Personal alerts: what a trader types in a chat (`alert btc crosses hvl`), as a rule (pure).

The grammar (product.md, *Personal alerts*):

    alert SYMBOL CONDITION [for DURATION] [cooldown DURATION] [once]
      CONDITION:  crosses LEVEL [up|down] [band PCT%]
                  near LEVEL PCT%|PRICE
                  above LEVEL|PRICE     below LEVEL|PRICE
                  outside em|em2
                  moved LEVEL PCT%|PRICE
                  rolls_off WALL PCT% DURATION    (levels from the chains)

A parsed alert becomes a `WhenSpec`, the rule files' own model, and its condition is built and
checked by the rule files' own `build_condition`, so a personal alert and the equivalent YAML
rule are the same `Rule` to the engine. Errors name the word that is wrong and what would fit.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from gexbot.core.language.durations import format_duration, parse_duration
from gexbot.core.language.model import (
    PERSONAL_PREFIX,
    Band,
    Condition,
    ConditionKind,
    Direction,
    Rule,
    Severity,
)
from gexbot.core.language.rulefile import WhenSpec, build_condition
from gexbot.core.market.snapshot import Level
from gexbot.core.market.symbols import SUPPORTED_SYMBOLS, normalize_symbol
from gexbot.core.present.format import fmt_price
from gexbot.core.present.labels import level_label

MAX_ALERT_INPUT = 200  # characters of an alert line we read at all
DEFAULT_BAND_PCT = 0.1  # a cross's dead band when none is given
MAX_DURATION = 30 * 86400.0

#: Short forms a trader types, beside every level's own name.
LEVEL_ALIASES: dict[str, Level] = {
    "cr": Level.CALL_RESISTANCE,
    "ps": Level.PUT_SUPPORT,
    "mp": Level.MAX_PAIN,
    "0dte.hvl": Level.ODTE_HVL,
    "0dte.cr": Level.ODTE_CALL_RESISTANCE,
    "0dte.ps": Level.ODTE_PUT_SUPPORT,
    "0dte.call_resistance": Level.ODTE_CALL_RESISTANCE,
    "0dte.put_support": Level.ODTE_PUT_SUPPORT,
    "odte.cr": Level.ODTE_CALL_RESISTANCE,
    "odte.ps": Level.ODTE_PUT_SUPPORT,
    "maxpain": Level.MAX_PAIN,
    "zg": Level.ZERO_GAMMA,
    "zerogamma": Level.ZERO_GAMMA,
}
_LEVEL_WORDS: dict[str, Level] = {**{lv.value: lv for lv in Level}, **LEVEL_ALIASES}
_BANDS = {"em": Band.ONE_SD, "em1": Band.ONE_SD, "em2": Band.TWO_SD}
_CONDITIONS = tuple(k.value for k in ConditionKind)
_OPTIONS = ("for", "cooldown", "once")
_NUMBER = re.compile(r"^\$?(\d+(?:\.\d+)?|\.\d+)$")
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)%$")


class AlertSyntaxError(ValueError):
    """What is wrong with a typed alert, naming the word and what fits (one line)."""


def rule_id_of(alert_id: int) -> str:
    """The rule id a personal alert is evaluated, stored and muted under."""
    return f"{PERSONAL_PREFIX}{alert_id}"


def alert_id_of(word: str) -> int | None:
    """`#12` or `12` → 12; None when the word is no alert id."""
    digits = word.removeprefix(PERSONAL_PREFIX)
    return int(digits) if digits.isdigit() and len(digits) <= 12 else None


@dataclass(frozen=True, slots=True)
class AlertRequest:
    """A typed alert, checked: one symbol, one condition, its options."""

    symbol: str
    condition: Condition
    hold: float = 0.0  # `for`
    cooldown: float = 0.0
    once: bool = False

    def condition_text(self) -> str:
        """The condition in its full spelling: `crosses hvl band 0.1%`."""
        return " ".join(_condition_words(self.condition))

    def canonical(self) -> str:
        """The alert in its full, unambiguous spelling (it parses back to itself)."""
        words = [self.symbol, self.condition_text()]
        if self.hold:
            words += ["for", format_duration(self.hold)]
        if self.cooldown:
            words += ["cooldown", format_duration(self.cooldown)]
        if self.once:
            words.append("once")
        return " ".join(words)

    def describe(self) -> str:
        """The condition in words, for the creation reply and `alerts`."""
        c = self.condition
        subject = level_label(c.subject) if c.level is not None else fmt_price(c.threshold)
        if c.kind is ConditionKind.CROSSES:
            way = {Direction.UP: " upwards", Direction.DOWN: " downwards"}.get(c.direction, "")
            text = f"{self.symbol} crosses its {subject}{way} (dead band {c.buffer_pct:g}%)"
        elif c.kind is ConditionKind.NEAR:
            band = f"{c.within_pct:g}%" if c.within_pct is not None else fmt_price(c.within_abs)
            text = f"{self.symbol} comes within {band} of its {subject}"
        elif c.kind in (ConditionKind.ABOVE, ConditionKind.BELOW):
            where = f"its {subject}" if c.level is not None else subject
            text = f"{self.symbol} goes {c.kind.value} {where}"
        elif c.kind is ConditionKind.OUTSIDE:
            sd = "1σ" if c.band is Band.ONE_SD else "2σ"
            text = f"{self.symbol} leaves its {sd} expected-move band"
        elif c.kind is ConditionKind.ROLLS_OFF:
            text = (
                f"{c.share_pct:g}% or more of {self.symbol}'s {subject} gamma settles at the "
                f"next 08:00 UTC, within {format_duration(c.within_s or 0)} of it"
            )
        else:
            size = f"{c.by_pct:g}%" if c.by_pct is not None else fmt_price(c.by_abs)
            text = f"{self.symbol}'s {subject} moves by {size} or more"
        if self.hold:
            text += f", holding for {format_duration(self.hold)}"
        if self.cooldown:
            text += f", at most once per {format_duration(self.cooldown)}"
        if self.once:
            text += ", once (then deleted)"
        return text


@dataclass(frozen=True, slots=True)
class PersonalAlert:
    """A stored personal alert: who made it, where it is delivered, and what it watches."""

    id: int
    platform: str  # telegram | slack | discord
    chat_id: str
    owner: str  # the user id that created it
    request: AlertRequest
    created_at: datetime
    last_fired: datetime | None = None
    paused: str | None = None  # why delivery stopped (the chat blocked the bot, or is gone)

    @property
    def rule_id(self) -> str:
        """`#12`."""
        return rule_id_of(self.id)

    @property
    def channel(self) -> str:
        """The outbox channel of the chat that made it (`telegram:42`, `slack:C0123`)."""
        return f"{self.platform}:{self.chat_id}"

    def rule(self) -> Rule:
        """The alert as a rule of the engine: this symbol only, delivered to this chat only."""
        r = self.request
        return Rule(
            id=self.rule_id,
            condition=r.condition,
            symbols=(r.symbol,),
            notify=(self.channel,),
            cooldown=r.cooldown,
            hold=r.hold,
            severity=Severity.WARNING,
            once=r.once,
        )


def _condition_words(c: Condition) -> list[str]:
    if c.kind is ConditionKind.OUTSIDE:
        return ["outside", "em" if c.band is Band.ONE_SD else "em2"]
    subject = c.subject
    if c.kind is ConditionKind.CROSSES:
        way = [c.direction.value] if c.direction is not Direction.ANY else []
        return ["crosses", subject, *way, "band", f"{c.buffer_pct:g}%"]
    if c.kind is ConditionKind.NEAR:
        band = f"{c.within_pct:g}%" if c.within_pct is not None else f"{c.within_abs:g}"
        return ["near", subject, band]
    if c.kind is ConditionKind.MOVED:
        size = f"{c.by_pct:g}%" if c.by_pct is not None else f"{c.by_abs:g}"
        return ["moved", subject, size]
    if c.kind is ConditionKind.ROLLS_OFF:
        return ["rolls_off", subject, f"{c.share_pct:g}%", format_duration(c.within_s or 0)]
    return [c.kind.value, subject]


def _hint(word: str, choices: Sequence[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f"; did you mean {match[0]}?" if match else ""


def _short(word: str) -> str:
    return word if len(word) <= 24 else word[:23] + "…"


class _Words:
    """The words of an alert line, read left to right."""

    def __init__(self, words: list[str]) -> None:
        self.words = words
        self.i = 0

    def peek(self) -> str | None:
        return self.words[self.i].lower() if self.i < len(self.words) else None

    def take(self, what: str, example: str) -> str:
        word = self.peek()
        if word is None:
            raise AlertSyntaxError(f"{what} is missing: {example}")
        self.i += 1
        return word


def parse_alert(text: str, *, universe: Sequence[str] = SUPPORTED_SYMBOLS) -> AlertRequest:
    """Parse `btc crosses hvl`, `eth near cr 0.5% for 5m`, `sol below 150 once` (the words
    after `alert`); AlertSyntaxError names the first wrong word."""
    if len(text) > MAX_ALERT_INPUT:
        raise AlertSyntaxError(
            f"That alert is too long ({len(text)} characters; at most {MAX_ALERT_INPUT})."
        )
    words = _Words(text.split())
    symbol = _symbol(words.take("The symbol", "alert btc crosses hvl"), universe)
    when = _when(words)
    hold = cooldown = 0.0
    once = False
    while (word := words.peek()) is not None:
        words.i += 1
        if word == "once" and not once:
            once = True
        elif word == "for" and not hold:
            hold = _duration(words.take("The duration after for", "for 5m"), "for")
        elif word == "cooldown" and not cooldown:
            cooldown = _duration(words.take("The duration after cooldown", "cooldown 1h"), word)
        elif word in _OPTIONS:
            raise AlertSyntaxError(f'"{word}" is given twice.')
        else:
            hint = _hint(word, _OPTIONS).removeprefix("; ")
            raise AlertSyntaxError(
                f'Unexpected "{_short(word)}" after the condition. What may follow: '
                f"for DURATION, cooldown DURATION, once.{' ' + hint.capitalize() if hint else ''}"
            )
    try:
        spec = WhenSpec.model_validate(when)
    except ValidationError as exc:  # the values the grammar let through are bounded already
        raise AlertSyntaxError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None
    problems: list[str] = []
    condition = build_condition(spec, lambda _option, message: problems.append(message))
    if condition is None:
        raise AlertSyntaxError(problems[0].replace("`", ""))
    return AlertRequest(symbol, condition, hold=hold, cooldown=cooldown, once=once)


def _symbol(word: str, universe: Sequence[str]) -> str:
    symbol = normalize_symbol(word)
    if symbol in universe:
        return symbol
    short = [s.removesuffix("USDT") for s in universe]
    hint = _hint(word.upper(), short)
    raise AlertSyntaxError(
        f'"{_short(word)}" is not a symbol gexbot watches{hint or "."} Symbols: {", ".join(short)}.'
    )


def _level(word: str) -> Level:
    if word in _LEVEL_WORDS:
        return _LEVEL_WORDS[word]
    names = ["hvl", "cr", "ps", "mp", "0dte.hvl", *(lv.value for lv in Level)]
    raise AlertSyntaxError(
        f'"{_short(word)}" is not a level{_hint(word, names) or "."} '
        "Levels: hvl, cr (call resistance), ps (put support), mp (max pain), 0dte.hvl, "
        "call_wall_2, put_wall_2, …"
    )


def _duration(word: str, option: str) -> float:
    try:
        seconds = parse_duration(word)
    except ValueError:
        raise AlertSyntaxError(
            f'"{_short(word)}" is not a duration: write {option} 30s, 15m, 2h or 1d.'
        ) from None
    if not 0 < seconds <= MAX_DURATION:
        raise AlertSyntaxError(f"{option} lasts between 1 second and 30 days.")
    return seconds


def _size(word: str | None, kind: str, example: str) -> tuple[str, float]:
    """A band or move: `0.5%` → ("pct", 0.5), `250` → ("abs", 250.0)."""
    if word is None or word in _OPTIONS:
        raise AlertSyntaxError(f"{kind} needs a band: {example}")
    if m := _PERCENT.match(word):
        value = float(m.group(1))
        if not 0 < value <= 50:
            raise AlertSyntaxError(f'"{word}" is out of range: a band is above 0% and at most 50%.')
        return "pct", value
    if m := _NUMBER.match(word):
        value = float(m.group(1))
        if value <= 0:
            raise AlertSyntaxError(f'"{word}" must be above zero: {example}')
        return "abs", value
    raise AlertSyntaxError(f'"{_short(word)}" is not a percentage or a price: {example}')


def _price(word: str) -> float | None:
    m = _NUMBER.match(word.replace(",", ""))
    return float(m.group(1)) if m else None


def _when(words: _Words) -> dict[str, Any]:
    kind = words.take("The condition", "crosses, near, above, below, outside, moved or rolls_off")
    if kind not in _CONDITIONS:
        raise AlertSyntaxError(
            f'"{_short(kind)}" is not a condition{_hint(kind, _CONDITIONS) or "."} '
            f"Conditions: {', '.join(_CONDITIONS)}."
        )
    if kind == "outside":
        word = words.take("The band", "outside em (1σ) or outside em2 (2σ)")
        if word not in _BANDS:
            raise AlertSyntaxError(
                f'"{_short(word)}" is not an expected-move band: '
                "outside em (1σ) or outside em2 (2σ)."
            )
        return {"outside": _BANDS[word].value}
    subject = words.take("The level", f"{kind} hvl")
    if kind in ("above", "below"):
        price = _price(subject)
        if price is not None:
            if price <= 0:
                raise AlertSyntaxError(f'"{subject}" must be above zero.')
            return {kind: price}
        return {kind: _level(subject).value}
    if _price(subject) is not None:
        raise AlertSyntaxError(
            f'"{subject}" is a price; {kind} needs a level (hvl, cr, ps…). '
            f"For a price: above {subject} or below {subject}."
        )
    level = _level(subject).value
    if kind == "rolls_off":
        example = f"rolls_off {subject} 40% 2h"
        word = words.take("The share of the wall's gamma", example)
        m = _PERCENT.match(word)
        if m is None or not 0 < (share := float(m.group(1))) <= 100:
            raise AlertSyntaxError(
                f'"{_short(word)}" is not a share: a roll-off is above 0% and at most 100% of '
                f"the wall's gamma: {example}"
            )
        within = words.take("How soon the settlement is", example)
        _duration(within, "rolls_off")
        return {"rolls_off": {"level": level, "share_pct": share, "within": within}}
    if kind == "crosses":
        out: dict[str, Any] = {"crosses": level, "buffer_pct": DEFAULT_BAND_PCT}
        if words.peek() in ("up", "down"):
            out["direction"] = words.take("", "")
        if words.peek() == "band":
            words.i += 1
            unit, value = _size(words.peek(), "band", "crosses hvl band 0.2%")
            words.i += 1
            if unit != "pct":
                raise AlertSyntaxError("A cross's band is a percentage: crosses hvl band 0.2%")
            out["buffer_pct"] = value
        return out
    example = f"{kind} {subject} 0.5%" if kind == "near" else f"moved {subject} 1%"
    unit, value = _size(words.peek(), kind, example)
    words.i += 1
    if kind == "near":
        return {"near": level, f"within_{unit}": value}
    return {"moved": level, f"by_{unit}": value}
