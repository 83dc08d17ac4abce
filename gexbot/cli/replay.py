"""`gexbot replay`: load history (BackQuant's stress history or our own), replay, report."""

from __future__ import annotations

import argparse
import csv
import gc
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.table import Table

from gexbot.adapters.backquant import FetchError
from gexbot.app import Purpose, backquant_client, open_database, real_runtime, utcnow
from gexbot.cli import EXIT_INVALID, EXIT_OK
from gexbot.core.language.model import Rule
from gexbot.core.language.rulefile import RulesError
from gexbot.core.market.snapshot import Level
from gexbot.core.market.symbols import SUPPORTED_SYMBOLS, normalize_symbol
from gexbot.core.present.format import fmt_age
from gexbot.core.replay.columns import replay_columns
from gexbot.core.replay.history import SymbolHistory
from gexbot.core.replay.result import STRESS_HISTORY_LEVELS, PairStats, ReplayResult, not_replayable
from gexbot.loops.rules import load_rules
from gexbot.settings import Settings, env_name, load_settings
from gexbot.store.errors import NoSchema
from gexbot.store.snapshots import load_history


class ReplayInputError(ValueError):
    """A one-line reason the replay cannot run."""


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """What the user asked for."""

    days: int
    symbols: list[str]
    source: str  # api | store
    fmt: str  # table | json | csv
    timeline: bool


def check_request(
    days: int, symbols: Sequence[str], source: str, universe: Sequence[str]
) -> list[str]:
    """Validate the arguments; the normalised symbols."""
    if source == "api" and not 1 <= days <= 30:
        raise ReplayInputError(f"--days must be 1 to 30 for --source api (got {days})")
    if days < 1:
        raise ReplayInputError(f"--days must be at least 1 (got {days})")
    chosen = [normalize_symbol(s) for s in symbols] or list(universe)
    unknown = [s for s in chosen if s not in SUPPORTED_SYMBOLS]
    if unknown:
        raise ReplayInputError(
            f"unknown symbol(s) {', '.join(unknown)}; supported: {', '.join(SUPPORTED_SYMBOLS)}"
        )
    return list(dict.fromkeys(chosen))


async def load_series(
    settings: Settings, req: ReplayRequest, now: datetime
) -> dict[str, SymbolHistory]:
    """History per symbol from the chosen source, oldest first."""
    series: dict[str, SymbolHistory] = {}
    if req.source == "api":
        async with backquant_client(settings, runtime=real_runtime()) as client:
            for sym in req.symbols:
                try:
                    stress = await client.stress_history(sym, req.days)
                except FetchError as exc:
                    raise ReplayInputError(f"stress history for {sym}: {exc}") from None
                series[sym] = SymbolHistory.of_stress(sym, stress)
    else:
        try:
            with open_database(settings, Purpose.READ) as engine, engine.connect() as conn:
                for sym in req.symbols:
                    stored = load_history(conn, sym, since=now - timedelta(days=req.days))
                    series[sym] = SymbolHistory.of_snapshots(sym, stored)
        except NoSchema:  # the bot never ran on this database: it simply has no history yet
            series = {sym: SymbolHistory.of_snapshots(sym, []) for sym in req.symbols}
    empty = [s for s, v in series.items() if not len(v)]
    if len(empty) == len(series):
        raise ReplayInputError(
            f"no history for {', '.join(empty)} in the last {req.days} day(s) from {req.source}"
        )
    return series


def run_replay(
    rules: Sequence[Rule], series: Mapping[str, SymbolHistory], source: str
) -> tuple[ReplayResult, dict[str, list[str]], list[Rule]]:
    """Replay the replayable rules; also returns the rules left out and why."""
    available = STRESS_HISTORY_LEVELS if source == "api" else frozenset(Level)
    skipped = not_replayable(rules, available)
    kept = [r for r in rules if r.id not in skipped]
    # A replay builds a status, an observation and often an event at each of its ~100,000
    # stops, and none of them forms a cycle worth collecting: the collector's passes over
    # them cost 10%. Paused for the run.
    gc.disable()
    try:
        return replay_columns(kept, series), skipped, kept
    finally:
        gc.enable()


def _gap(seconds: float | None) -> str:
    return "—" if seconds is None else fmt_age(seconds)


def report(
    result: ReplayResult,
    stats: list[PairStats],
    skipped: dict[str, list[str]],
    req: ReplayRequest,
    console: Console,
) -> None:
    """Print in the requested format."""
    if req.fmt == "json":
        body: dict[str, object] = {
            "source": req.source,
            "start": result.start,
            "end": result.end,
            "snapshots": result.snapshots,
            "not_replayable": skipped,
            "stats": [
                {
                    "rule": s.rule_id,
                    "symbol": s.symbol,
                    "alerts": s.alerts,
                    "per_day": round(s.per_day, 3),
                    "median_gap_s": s.median_gap,
                    "shortest_gap_s": s.shortest_gap,
                    "longest_quiet_s": s.longest_quiet,
                    "first": list(s.first),
                }
                for s in stats
            ],
        }
        if req.timeline:
            body["timeline"] = [
                {
                    "at": a.at,
                    "rule": a.rule_id,
                    "symbol": a.symbol,
                    "reason": a.reason.value,
                    "text": a.headline,
                }
                for a in result.alerts
            ]
        console.file.write(json.dumps(body, default=_iso, indent=2) + "\n")
        return
    if req.fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(
            [
                "rule",
                "symbol",
                "alerts",
                "per_day",
                "median_gap_s",
                "shortest_gap_s",
                "longest_quiet_s",
                "first",
            ]
        )
        for s in stats:
            w.writerow(
                [
                    s.rule_id,
                    s.symbol,
                    s.alerts,
                    f"{s.per_day:.3f}",
                    s.median_gap,
                    s.shortest_gap,
                    s.longest_quiet,
                    " ".join(_iso(t) for t in s.first),
                ]
            )
        console.file.write(out.getvalue())
        return
    start = result.start.strftime("%Y-%m-%d %H:%M") if result.start else "?"
    end = result.end.strftime("%Y-%m-%d %H:%M UTC") if result.end else "?"
    console.print(
        f"Replayed {result.snapshots:,} snapshots from {req.source}, {start} → {end}",
        markup=False,
        highlight=False,
    )
    for rule_id, levels in skipped.items():
        console.print(
            f"not replayable from {req.source}: {rule_id} (needs {', '.join(levels)})",
            markup=False,
            highlight=False,
        )
    table = Table(box=None, header_style="bold")
    for col in (
        "rule",
        "symbol",
        "alerts",
        "per day",
        "median gap",
        "shortest gap",
        "longest quiet",
        "first alerts",
    ):
        table.add_column(
            col, justify="right" if col not in ("rule", "symbol", "first alerts") else "left"
        )
    for s in stats:
        first = ", ".join(t.strftime("%m-%d %H:%M") for t in s.first)
        table.add_row(
            s.rule_id,
            s.symbol,
            str(s.alerts),
            f"{s.per_day:.1f}",
            _gap(s.median_gap),
            _gap(s.shortest_gap),
            _gap(s.longest_quiet),
            first,
        )
    console.print(table)
    if req.timeline:
        for a in result.alerts:
            console.print(
                f"{a.at:%Y-%m-%d %H:%M:%S}  {a.rule_id:<24} {a.headline}",
                markup=False,
                highlight=False,
            )


def _iso(value: object) -> str:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else str(value)


async def replay(args: argparse.Namespace, console: Console, err: Console) -> int:
    """`gexbot replay`: how often each rule would have fired over the history."""
    settings = load_settings()
    if args.rules is not None:
        settings = settings.model_copy(update={"rules": args.rules})
    try:
        symbols = check_request(args.days, args.symbols, args.source, settings.symbols)
        rules = load_rules(
            settings.rules,
            universe=list(dict.fromkeys([*settings.symbols, *symbols])),
            setting=env_name("rules"),
        )
    except ReplayInputError as exc:
        err.print(f"gexbot replay: {exc}", markup=False, highlight=False)
        return EXIT_INVALID
    except RulesError as exc:
        for problem in exc.problems:
            err.print(str(problem), markup=False, highlight=False, soft_wrap=True)
        return EXIT_INVALID
    req = ReplayRequest(args.days, symbols, args.source, args.fmt, args.timeline)
    try:
        series = await load_series(settings, req, utcnow())
    except ReplayInputError as exc:
        err.print(f"gexbot replay: {exc}", markup=False, highlight=False)
        return EXIT_INVALID
    result, skipped, kept = run_replay(rules.rules, series, args.source)
    report(result, result.stats(kept, symbols), skipped, req, console)
    return EXIT_OK
