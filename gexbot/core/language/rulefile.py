"""Rule files: YAML text → validated, located specs → one merged `RuleSet`.

Every problem is a `Problem` at `FILE:LINE:COL`, all of them collected in one pass so
`gexbot check` can print them together. Nothing here reads files; `gexbot.loops.rules` does.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from gexbot.core.language.durations import parse_duration
from gexbot.core.language.model import (
    SNOWFLAKE,
    Band,
    Channel,
    ChannelKind,
    Condition,
    ConditionKind,
    Direction,
    Location,
    Rule,
    RuleSet,
    Severity,
)
from gexbot.core.language.templates import template_problems
from gexbot.core.language.yaml_located import Located, Path, YamlSyntaxError, load_located
from gexbot.core.market.snapshot import WALLS, Level
from gexbot.core.market.symbols import SUPPORTED_SYMBOLS, normalize_symbol

# ---------------------------------------------------------------------------------------------
# The file format (also the source of `gexbot schema`)


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


DurationText = Annotated[
    str,
    Field(
        pattern=r"^\s*(\d+(\.\d+)?[smhd]\s*)+$",
        description="A duration: 0s, 30s, 15m, 4h, 1d (or 1h30m).",
        examples=["15m"],
    ),
    BeforeValidator(lambda v: f"{v}s" if isinstance(v, int) and not isinstance(v, bool) else v),
    AfterValidator(lambda v: (parse_duration(v), v)[1]),
]
NotifyList = Annotated[
    list[str],
    BeforeValidator(_one_or_many),
    Field(description="Channel names (from `channels`) to send to."),
]
SymbolsField = Annotated[
    Literal["all"] | list[str],
    BeforeValidator(lambda v: v if v == "all" else _one_or_many(v)),
    Field(description="`all`, or a list such as [BTCUSDT, ETHUSDT] (BTC means BTCUSDT)."),
]

LEVEL_NAMES = tuple(level.value for level in Level)
#: Slack channel names (lowercase, up to 80 chars, optional #) or conversation ids (C…, G…, D…).
_SLACK_TARGET = re.compile(r"^(#?[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{8,})$")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ChannelSpec(_Spec):
    """A destination: exactly one of slack, telegram, discord or webhook, or the terminal."""

    slack: str | None = Field(None, description="Slack channel name (#gex-alerts) or id.")
    telegram: int | str | None = Field(None, description="Telegram chat id (a DM or a group).")
    discord: str | int | None = Field(
        None, description='Discord channel id, 17 to 20 digits ("123456789012345678").'
    )
    terminal: bool | None = Field(None, description="Print to the bot's terminal (stdout).")
    console: bool | None = Field(
        None,
        description="The older name of `terminal` (still read; the web console is another thing).",
    )
    webhook: str | None = Field(
        None,
        description="A webhook NAME: signed JSON POSTs to GEXBOT_WEBHOOK_<NAME>_URL.",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ChannelSpec:
        kinds = ("slack", "telegram", "discord", "terminal", "console", "webhook")
        chosen = [k for k in kinds if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "a channel needs exactly one of slack, telegram, discord, terminal or webhook"
            )
        return self


class RollsOffSpec(_Spec):
    """`rolls_off`: a wall whose gamma largely settles at the next 08:00 UTC expiry."""

    level: str = Field(description="A wall: call_resistance, call_wall_2/3, put_support, …")
    share_pct: float = Field(gt=0, le=100, description="The share of its gamma, in %.")
    within: DurationText = Field(description="How soon the settlement is: 2h, 90m.")


class WhenSpec(_Spec):
    """A condition and its options, side by side."""

    crosses: str | None = Field(None, description="Fires when spot ends up on the other side.")
    near: str | None = Field(None, description="Fires on entering a band around the level.")
    above: str | float | None = Field(None, description="Fires when spot becomes above.")
    below: str | float | None = Field(None, description="Fires when spot becomes below.")
    outside: Literal["expected_move_1sd", "expected_move_2sd"] | None = Field(
        None, description="Fires when spot leaves the expected-move band."
    )
    moved: str | None = Field(None, description="Fires when the level itself moves.")
    rolls_off: RollsOffSpec | None = Field(
        None,
        description="Fires when much of a wall's gamma settles soon (levels from the chains).",
    )
    direction: Direction | None = Field(None, description="crosses: up, down or any.")
    buffer_pct: float | None = Field(None, ge=0, description="crosses: dead band in %.")
    within_pct: float | None = Field(None, gt=0, description="near: band in % of spot.")
    within_abs: float | None = Field(None, gt=0, description="near: band in price units.")
    rearm_pct: float | None = Field(None, gt=0, description="near: re-arm band in %.")
    rearm_abs: float | None = Field(None, gt=0, description="near: re-arm band in price units.")
    by_pct: float | None = Field(None, gt=0, description="moved: move size in %.")
    by_abs: float | None = Field(None, gt=0, description="moved: move size in price units.")


class _Common(_Spec):
    symbols: SymbolsField | None = None
    notify: NotifyList | None = None
    cooldown: DurationText | None = Field(None, description="No second alert within this.")
    hold: DurationText | None = Field(
        None, alias="for", description="The condition must hold this long before firing."
    )
    repeat: DurationText | None = Field(None, description="Re-notify this often while true.")
    resolve: bool | None = Field(None, description="Send a notice when the condition clears.")
    severity: Severity | None = None


class DefaultsSpec(_Common):
    """Applied to every rule of the file that does not set its own."""


class RuleSpec(_Common):
    """One rule."""

    id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        max_length=64,
        description="Unique across files: lowercase letters, digits and dashes.",
    )
    when: WhenSpec
    message: str | None = Field(None, description="Template: {symbol} crossed {direction} …")
    chart: bool = Field(False, description="Attach the levels chart (PNG) to the alerts.")


class WarningsSpec(_Spec):
    """Where feed warnings go (missing, invalid, stale, feed down, auth)."""

    notify: NotifyList = []


class RuleFileSpec(_Spec):
    """A gexbot rule file."""

    model_config = ConfigDict(
        extra="forbid", title="gexbot rule file", json_schema_extra={"$id": "gexbot-rules"}
    )

    channels: dict[str, ChannelSpec] = {}
    defaults: DefaultsSpec = DefaultsSpec()
    warnings: WarningsSpec | None = None
    rules: list[RuleSpec] = []


def rule_file_json_schema() -> dict[str, Any]:
    """The JSON Schema of rule files (what `gexbot schema` prints)."""
    schema = RuleFileSpec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


# ---------------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True, slots=True)
class Problem:
    """One located problem."""

    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class RulesError(ValueError):
    """Rules are invalid; every problem is listed."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


def _hint(word: str, choices: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {match[0]}?)" if match else ""


@dataclass(slots=True)
class _Ctx:
    filename: str
    doc: Located
    problems: list[Problem] = field(default_factory=list)

    def at(self, path: Path, message: str, *, key: bool = False) -> None:
        line, col = self.doc.where(path, key=key)
        self.problems.append(Problem(Location(self.filename, line, col), message))

    def loc(self, path: Path, *, key: bool = False) -> Location:
        line, col = self.doc.where(path, key=key)
        return Location(self.filename, line, col)


def _pydantic_problems(ctx: _Ctx, base: Path, exc: ValidationError, model: type[BaseModel]) -> None:
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path: Path = (*base, *(p for p in loc if isinstance(p, str | int)))
        kind = err["type"]
        if kind == "extra_forbidden":
            name = str(loc[-1])
            fields = _fields_at(model, loc[:-1])
            ctx.at(path, f"unknown option `{name}`{_hint(name, fields)}", key=True)
        elif kind == "missing":
            ctx.at(path, f"`{loc[-1]}` is required")
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            if kind == "string_pattern_mismatch" and loc and loc[-1] == "id":
                msg = "rule ids use lowercase letters, digits and dashes (e.g. hvl-regime)"
            elif kind == "string_pattern_mismatch" and loc and loc[-1] == "webhook":
                msg = "a webhook name uses letters, digits, dashes and underscores (e.g. desk-ops)"
            elif kind == "string_pattern_mismatch":
                msg = "bad duration: write a number and a unit s, m, h or d (0s, 30s, 15m, 4h, 1d)"
            where = ".".join(str(p) for p in loc)
            ctx.at(path, f"{where}: {msg}" if where else msg)


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", {})
        info = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        if info is None:
            return []
        annotation = info.annotation
        current = next(
            (
                a
                for a in getattr(annotation, "__args__", (annotation,))
                if hasattr(a, "model_fields")
            ),
            None,
        )
        if current is None and hasattr(annotation, "__args__"):
            current = next(
                (
                    inner
                    for a in annotation.__args__
                    for inner in getattr(a, "__args__", ())
                    if hasattr(inner, "model_fields")
                ),
                None,
            )
    fields = getattr(current, "model_fields", {})
    return [f.alias or name for name, f in fields.items()]


# ---------------------------------------------------------------------------------------------
# One file


_OPTIONS: dict[ConditionKind, frozenset[str]] = {
    ConditionKind.CROSSES: frozenset({"direction", "buffer_pct"}),
    ConditionKind.NEAR: frozenset({"within_pct", "within_abs", "rearm_pct", "rearm_abs"}),
    ConditionKind.ABOVE: frozenset(),
    ConditionKind.BELOW: frozenset(),
    ConditionKind.OUTSIDE: frozenset(),
    ConditionKind.MOVED: frozenset({"by_pct", "by_abs"}),
    ConditionKind.ROLLS_OFF: frozenset(),
}
_ALL_OPTIONS = frozenset().union(*_OPTIONS.values())


@dataclass(frozen=True, slots=True)
class RuleDraft:
    """A rule parsed from one file, before channels of every file are known."""

    rule: Rule
    notify_locations: tuple[Location, ...]


@dataclass(slots=True)
class ParsedFile:
    """One rule file after its own checks."""

    filename: str
    channels: dict[str, tuple[Channel, Location]] = field(default_factory=dict)
    warnings: tuple[tuple[str, Location], ...] = ()
    drafts: list[RuleDraft] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def parse_rule_file(
    text: str, filename: str, *, universe: Sequence[str] = SUPPORTED_SYMBOLS
) -> ParsedFile:
    """Parse and check one rule file on its own (channels are resolved in `build_ruleset`)."""
    out = ParsedFile(filename)
    try:
        doc = load_located(text)
    except YamlSyntaxError as exc:
        out.problems.append(Problem(Location(filename, exc.line, exc.col), f"invalid YAML: {exc}"))
        return out
    ctx = _Ctx(filename, doc)
    for path, (line, col) in doc.duplicates:
        ctx.problems.append(Problem(Location(filename, line, col), f"duplicate key `{path[-1]}`"))
    raw = doc.value
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        ctx.at((), "a rule file is a mapping with channels, defaults, warnings and rules")
        out.problems = ctx.problems
        return out
    for key in raw:
        if key not in RuleFileSpec.model_fields:
            ctx.at(
                (key,),
                f"unknown section `{key}`{_hint(str(key), RuleFileSpec.model_fields)}",
                key=True,
            )
    out.channels = _channels(ctx, raw.get("channels"))
    defaults = _section(ctx, ("defaults",), raw.get("defaults") or {}, DefaultsSpec)
    # With broken defaults, rules relying on them would each report a missing notify: noise.
    lenient = defaults is None
    warnings = _section(ctx, ("warnings",), raw.get("warnings") or {}, WarningsSpec)
    if warnings is not None:
        out.warnings = tuple(
            (
                name,
                ctx.loc(
                    ("warnings", "notify", i)
                    if len(warnings.notify) > 1
                    or isinstance((raw.get("warnings") or {}).get("notify"), list)
                    else ("warnings", "notify")
                ),
            )
            for i, name in enumerate(warnings.notify)
        )
    rules_raw = raw.get("rules") or []
    if not isinstance(rules_raw, list):
        ctx.at(("rules",), "`rules` is a list of rules")
        rules_raw = []
    seen: dict[str, Location] = {}
    for i, rule_raw in enumerate(rules_raw):
        draft = _rule(ctx, i, rule_raw, defaults or DefaultsSpec(), universe, lenient=lenient)
        if draft is None:
            continue
        rid = draft.rule.id
        if rid in seen:
            ctx.at(("rules", i, "id"), f"duplicate rule id `{rid}` (also at {seen[rid]})")
            continue
        seen[rid] = draft.rule.location or ctx.loc(("rules", i))
        out.drafts.append(draft)
    out.problems = sorted(ctx.problems, key=lambda p: (p.location.line, p.location.col))
    return out


M = TypeVar("M", bound=BaseModel)


def _section(ctx: _Ctx, path: Path, raw: Any, model: type[M]) -> M | None:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        _pydantic_problems(ctx, path, exc, model)
        return None


def _channels(ctx: _Ctx, raw: Any) -> dict[str, tuple[Channel, Location]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        ctx.at(("channels",), "`channels` maps names to destinations, e.g. desk: {slack: '#gex'}")
        return {}
    out = {}
    for name, spec_raw in raw.items():
        spec = _section(ctx, ("channels", name), spec_raw, ChannelSpec)
        if spec is None:
            continue
        if spec.slack is not None:
            if not _SLACK_TARGET.match(spec.slack):
                ctx.at(
                    ("channels", name, "slack"),
                    "a Slack channel is a name (#gex-alerts) or an id (C0123ABCD)",
                )
                continue
            channel = Channel(str(name), ChannelKind.SLACK, spec.slack)
        elif spec.telegram is not None:
            if not str(spec.telegram).lstrip("-").isdigit():
                ctx.at(("channels", name, "telegram"), "a Telegram chat id is a number")
                continue
            channel = Channel(str(name), ChannelKind.TELEGRAM, str(spec.telegram))
        elif spec.discord is not None:
            if not SNOWFLAKE.match(str(spec.discord)):
                ctx.at(
                    ("channels", name, "discord"),
                    'a Discord channel id is 17 to 20 digits, quoted: "123456789012345678" '
                    "(Developer Mode, right-click the channel, Copy Channel ID)",
                )
                continue
            channel = Channel(str(name), ChannelKind.DISCORD, str(spec.discord))
        elif spec.webhook is not None:
            channel = Channel(str(name), ChannelKind.WEBHOOK, spec.webhook)
        else:
            channel = Channel(str(name), ChannelKind.TERMINAL, "terminal")
        out[str(name)] = (channel, ctx.loc(("channels", name), key=True))
    return out


Report = Callable[[str | None, str], None]  # (the option at fault, or None: the condition; message)


def _level(report: Report, name: Any) -> Level | None:
    if isinstance(name, str) and name in LEVEL_NAMES:
        return Level(name)
    report(
        None,
        f"unknown level `{name}`{_hint(str(name), LEVEL_NAMES)}; levels: " + ", ".join(LEVEL_NAMES),
    )
    return None


def build_condition(when: WhenSpec, report: Report) -> Condition | None:
    """The condition of a `when`, checked; each problem goes to `report` (None when any).

    Rule files and personal alerts both build their conditions here, so they cannot disagree.
    """
    kinds = [k for k in ConditionKind if getattr(when, k.value) is not None]
    if len(kinds) != 1:
        names = ", ".join(k.value for k in ConditionKind)
        msg = "`when` needs one condition" if not kinds else "`when` has more than one condition"
        report("", f"{msg}: one of {names}")
        return None
    kind = kinds[0]
    set_options = {k for k in _ALL_OPTIONS if getattr(when, k) is not None}
    bad = sorted(set_options - _OPTIONS[kind])
    for opt in bad:
        belongs = [k.value for k, opts in _OPTIONS.items() if opt in opts]
        report(
            opt, f"`{opt}` does not apply to `{kind.value}` (it belongs to {' / '.join(belongs)})"
        )
    if bad:
        return None
    value = getattr(when, kind.value)
    if isinstance(value, RollsOffSpec):
        return _rolls_off(value, report)
    if kind is ConditionKind.OUTSIDE:
        return Condition(kind, band=Band(value))
    if kind in (ConditionKind.ABOVE, ConditionKind.BELOW) and isinstance(value, int | float):
        return Condition(kind, threshold=float(value))
    level = _level(report, value)
    if level is None:
        return None
    if kind is ConditionKind.NEAR:
        if (when.within_pct is None) == (when.within_abs is None):
            report(None, "`near` needs exactly one of within_pct or within_abs")
            return None
        if (
            when.rearm_pct is not None
            and when.within_pct is not None
            and (when.rearm_pct < when.within_pct)
        ):
            report("rearm_pct", "rearm_pct must be at least within_pct")
            return None
        if (
            when.rearm_abs is not None
            and when.within_abs is not None
            and (when.rearm_abs < when.within_abs)
        ):
            report("rearm_abs", "rearm_abs must be at least within_abs")
            return None
    if kind is ConditionKind.MOVED and (when.by_pct is None) == (when.by_abs is None):
        report(None, "`moved` needs exactly one of by_pct or by_abs")
        return None
    return Condition(
        kind,
        level=level,
        direction=when.direction or Direction.ANY,
        buffer_pct=when.buffer_pct or 0.0,
        within_pct=when.within_pct,
        within_abs=when.within_abs,
        rearm_pct=when.rearm_pct,
        rearm_abs=when.rearm_abs,
        by_pct=when.by_pct,
        by_abs=when.by_abs,
    )


def _rolls_off(spec: RollsOffSpec, report: Report) -> Condition | None:
    level = _level(report, spec.level)
    if level is None:
        return None
    if level not in WALLS:
        walls = ", ".join(w.value for w in WALLS)
        report(None, f"`rolls_off` watches a wall, not `{level.value}`: one of {walls}")
        return None
    return Condition(
        ConditionKind.ROLLS_OFF,
        level=level,
        share_pct=spec.share_pct,
        within_s=parse_duration(spec.within),
    )


def _condition(ctx: _Ctx, base: Path, when: WhenSpec) -> Condition | None:
    kind = next((k.value for k in ConditionKind if getattr(when, k.value) is not None), None)

    def report(option: str | None, message: str) -> None:
        if option == "":
            ctx.at(base, message)
        elif option is None:
            ctx.at((*base, kind or ""), message)
        else:
            ctx.at((*base, option), message, key=True)

    return build_condition(when, report)


def _rule(
    ctx: _Ctx,
    i: int,
    raw: Any,
    defaults: DefaultsSpec,
    universe: Sequence[str],
    *,
    lenient: bool = False,
) -> RuleDraft | None:
    base: Path = ("rules", i)
    if not isinstance(raw, dict):
        ctx.at(base, "a rule is a mapping with at least `id` and `when`")
        return None
    spec = _section(ctx, base, raw, RuleSpec)
    if spec is None:
        return None
    condition = _condition(ctx, (*base, "when"), spec.when)
    kind = condition.kind if condition else None
    ok = condition is not None
    if kind is not None and kind.is_event:
        for opt in ("repeat", "resolve"):
            if opt in raw:
                ctx.at(
                    (*base, opt),
                    f"`{opt}` applies to conditions that stay true (near, above, "
                    f"below, outside), not to `{kind.value}`",
                    key=True,
                )
                ok = False
    if spec.message is not None:
        for problem in template_problems(spec.message):
            ctx.at((*base, "message"), problem)
            ok = False
    symbols_spec = spec.symbols if spec.symbols is not None else defaults.symbols
    symbols: tuple[str, ...] | None = None
    if symbols_spec is not None and symbols_spec != "all":
        norm = []
        where = "symbols" if spec.symbols is not None else None
        for j, sym in enumerate(symbols_spec):
            s = normalize_symbol(sym)
            if s not in universe:
                path = (*base, "symbols", j) if where else ("defaults", "symbols", j)
                ctx.at(
                    path,
                    f"unknown symbol `{sym}`{_hint(s, universe)}; watched: " + ", ".join(universe),
                )
                ok = False
            norm.append(s)
        symbols = tuple(dict.fromkeys(norm))
    notify = spec.notify if spec.notify is not None else (defaults.notify or [])
    if spec.notify is not None:
        npaths: list[Path] = (
            [(*base, "notify", j) for j in range(len(notify))]
            if isinstance(raw.get("notify"), list)
            else [(*base, "notify")]
        )
    else:
        dn = ("defaults", "notify")
        npaths = [(*dn, j) for j in range(len(notify))] if len(notify) > 1 else [dn]
    if not notify:
        if not lenient:
            ctx.at(base, f"rule `{spec.id}` has no `notify` and the file has no defaults.notify")
        ok = False
    if not ok or condition is None:
        return None

    def dur(value: str | None, default: str | None, fallback: float | None) -> float | None:
        chosen = value if value is not None else default
        return parse_duration(chosen) if chosen is not None else fallback

    repeat = dur(spec.repeat, None if kind and kind.is_event else defaults.repeat, None)
    rule = Rule(
        id=spec.id,
        condition=condition,
        symbols=symbols,
        notify=tuple(notify),
        cooldown=dur(spec.cooldown, defaults.cooldown, 0.0) or 0.0,
        hold=dur(spec.hold, defaults.hold, 0.0) or 0.0,
        repeat=repeat if repeat else None,
        resolve=bool(
            spec.resolve
            if spec.resolve is not None
            else (defaults.resolve if kind and not kind.is_event else False)
        ),
        severity=spec.severity or defaults.severity or Severity.WARNING,
        message=spec.message,
        chart=spec.chart,
        location=ctx.loc((*base, "id")),
    )
    return RuleDraft(rule, tuple(ctx.loc(p) for p in npaths))


# ---------------------------------------------------------------------------------------------
# Every file together


def build_ruleset(files: Sequence[ParsedFile]) -> RuleSet:
    """Merge parsed files into one RuleSet, or raise RulesError listing every problem."""
    problems = [p for f in files for p in f.problems]
    channels: dict[str, Channel] = {}
    channel_at: dict[str, Location] = {}
    for f in files:
        for name, (channel, loc) in f.channels.items():
            if name in channels and channels[name] != channel:
                problems.append(
                    Problem(loc, f"channel `{name}` is defined differently at {channel_at[name]}")
                )
                continue
            channels.setdefault(name, channel)
            channel_at.setdefault(name, loc)
    defined = ", ".join(sorted(channels)) or "none"

    def unknown(name: str, loc: Location) -> None:
        problems.append(
            Problem(loc, f"unknown channel `{name}`{_hint(name, channels)}; defined: {defined}")
        )

    warnings: list[str] = []
    for f in files:
        for name, loc in f.warnings:
            if name not in channels:
                unknown(name, loc)
            elif name not in warnings:
                warnings.append(name)
    rules: list[Rule] = []
    first: dict[str, Rule] = {}
    for f in files:
        for draft in f.drafts:
            rule = draft.rule
            if rule.id in first:
                other = first[rule.id].location
                problems.append(
                    Problem(
                        rule.location or Location(f.filename, 1, 1),
                        f"duplicate rule id `{rule.id}` (first defined at {other})",
                    )
                )
                continue
            for name, loc in zip(rule.notify, draft.notify_locations, strict=False):
                if name not in channels:
                    unknown(name, loc)
            first[rule.id] = rule
            rules.append(rule)
    if problems:
        raise RulesError(problems)
    return RuleSet(channels=channels, warnings_notify=tuple(warnings), rules=tuple(rules))
