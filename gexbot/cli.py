"""The `gexbot` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr
from rich.console import Console

from gexbot.adapters.backquant import MULTI_INCLUDES, FetchError
from gexbot.app import (
    backquant_client,
    build_leadership,
    build_notifiers,
    build_slack_commands,
    build_telegram_commands,
    channel_problems,
    slack_endpoint_problems,
)
from gexbot.chat.service import ChatService
from gexbot.chat.slack_http import SlackEndpoint
from gexbot.console import levels_table
from gexbot.core.levels_view import levels_view
from gexbot.core.render import plain_text, render
from gexbot.core.rulefile import RulesError, rule_file_json_schema
from gexbot.core.rules import RuleSet
from gexbot.core.snapshot import BundleSnapshot
from gexbot.core.symbols import SUPPORTED_SYMBOLS, normalize_symbol
from gexbot.core.wire import mark_stale
from gexbot.health import Metrics
from gexbot.leader import SoleInstance
from gexbot.logs import configure as configure_logging
from gexbot.replay_cmd import (
    ReplayInputError,
    ReplayRequest,
    check_request,
    load_series,
    report,
    run_replay,
)
from gexbot.rules_loader import RulesWatcher, load_rules
from gexbot.runtime import Bot, utcnow
from gexbot.settings import Settings, SettingsError, load_settings
from gexbot.sim.market import DEMO_CONFIG, SimConfig, Simulator
from gexbot.sim.scenario import ScenarioError, apply_scenario, load_scenario
from gexbot.sim.server import DEFAULT_KEY, SimServer
from gexbot.store.engine import (
    DatabaseError,
    make_engine,
    masked,
    migrate,
    require_current_schema,
)
from gexbot.store.outbox import release_orphans
from gexbot.store.prune import prune
from gexbot.store.single import sqlite_lock

EXIT_OK = 0
EXIT_INVALID = 1  # bad settings, rules or arguments: fix the input
EXIT_FAILED = 2  # upstream or runtime failure


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gexbot", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lv = sub.add_parser("levels", help="print current levels (needs GEXBOT_API_KEY)")
    lv.add_argument("symbols", nargs="*", help="e.g. BTC ETHUSDT (default: GEXBOT_SYMBOLS)")

    sub.add_parser("run", help="the bot: poll, evaluate, persist, deliver, until SIGTERM")
    once = sub.add_parser("once", help="one cycle, then exit")
    once.add_argument(
        "--dry-run", action="store_true", help="print what would be sent; write nothing"
    )
    sub.add_parser("check", help="validate settings and rules; exit 1 and list every problem")
    sub.add_parser("schema", help="print the JSON Schema of rule files")
    ch = sub.add_parser("chart", help="render the levels chart of a symbol to a PNG")
    ch.add_argument("symbol")
    ch.add_argument("-o", "--output", type=Path, required=True, help="FILE.png")
    rp = sub.add_parser("replay", help="how often would the rules have fired? (history replay)")
    rp.add_argument("--days", type=int, default=7)
    rp.add_argument("--symbols", nargs="*", default=[])
    rp.add_argument("--rules", type=Path, default=None, help="default: GEXBOT_RULES")
    rp.add_argument("--source", choices=["api", "store"], default="api")
    rp.add_argument("--format", dest="fmt", choices=["table", "json", "csv"], default="table")
    rp.add_argument("--timeline", action="store_true", help="list every alert")
    db = sub.add_parser("db", help="database maintenance")
    db.add_argument(
        "action",
        choices=["upgrade", "prune"],
        help="upgrade: apply migrations; prune: delete what is older than GEXBOT_RETENTION_DAYS",
    )

    demo = sub.add_parser("demo", help="the whole bot on the built-in simulator, no key needed")
    demo.add_argument("--seed", type=int, default=DEMO_CONFIG.seed)
    demo.add_argument(
        "--for",
        dest="duration",
        type=float,
        default=0,
        help="stop after this many seconds (0: run until Ctrl-C)",
    )
    demo.add_argument("--levels", action="store_true", help="print the levels table at start")

    srv = sub.add_parser("sim-server", help="run the simulated BackQuant API alone")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8787)
    srv.add_argument("--seed", type=int, default=0)
    srv.add_argument("--scenario", type=Path, help="YAML scenario file (see docs in README)")
    srv.add_argument("--api-key", default=DEFAULT_KEY)
    srv.add_argument("--refresh", type=float, default=30.0, help="seconds between refreshes")
    srv.add_argument("--speed", type=float, default=1.0, help="market activity multiplier")
    srv.add_argument("--rate-limit", type=int, default=600, help="requests per minute per key")
    srv.add_argument("--monthly-quota", type=int, default=None)
    srv.add_argument("--api-version", default="2.0", help="meta.version to serve")
    srv.add_argument(
        "--request-log", type=Path, default=None, help="append one JSON line per request here"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    configure_logging(_log_format(), verbose=args.verbose)
    if args.command not in ("run", "demo") and not args.verbose:
        logging.getLogger("gexbot").setLevel(logging.WARNING)
    console = Console()
    err = Console(stderr=True)
    try:
        if args.command == "check":
            return _check(console, err)
        if args.command == "db":
            return _db(args.action, console)
        if args.command == "chart":
            return asyncio.run(_chart(load_settings(), args.symbol, args.output, err))
        if args.command == "replay":
            return asyncio.run(_replay(args, console, err))
        if args.command == "schema":
            sys.stdout.write(json.dumps(rule_file_json_schema(), indent=2) + "\n")
            return EXIT_OK
        if args.command == "levels":
            settings = load_settings()
            symbols = [normalize_symbol(s) for s in args.symbols] or settings.symbols
            return asyncio.run(_levels(settings, symbols, console, err))
        if args.command == "sim-server":
            return asyncio.run(_sim_server(args, console, err))
        if args.command == "demo":
            return asyncio.run(_demo(args, console, err))
        if args.command == "run":
            return asyncio.run(_serve(load_settings(), console, err))
        if args.command == "once":
            return asyncio.run(
                _serve(load_settings(), console, err, once=True, dry_run=args.dry_run)
            )
    except SettingsError as exc:
        for line in exc.problems:
            err.print(line, style="red", markup=False, highlight=False)
        if args.command in ("run", "once", "demo"):
            err.print(f"gexbot did not start: {_count(len(exc.problems), 'problem')}")
            return EXIT_FAILED
        return EXIT_INVALID
    except DatabaseError as exc:
        err.print(str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_INVALID


def _log_format() -> str:
    """GEXBOT_LOG_FORMAT from the environment or `.env`; text when the settings are invalid
    (the command itself then reports them)."""
    try:
        return load_settings().log_format
    except SettingsError:
        return "text"


def _db(action: str, console: Console) -> int:
    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        head = migrate(engine)
        if action == "upgrade":
            where = masked(settings.database_url)
            console.print(f"database at revision {head} ({where})", markup=False, highlight=False)
            return EXIT_OK
        done = prune(engine, now=datetime.now(tz=UTC), retention_days=settings.retention_days)
    finally:
        engine.dispose()
    console.print(
        f"pruned {done.sent} sent messages and {done.history} snapshots older than "
        f"{settings.retention_days:g} days",
        markup=False,
        highlight=False,
    )
    return EXIT_OK


async def _chart(settings: Settings, symbol: str, output: Path, err: Console) -> int:
    from gexbot.charts import render_chart  # noqa: PLC0415 - matplotlib only when charting

    sym = normalize_symbol(symbol)
    if sym not in SUPPORTED_SYMBOLS:
        err.print(
            f"gexbot chart: unknown symbol {symbol}; supported: {', '.join(SUPPORTED_SYMBOLS)}",
            markup=False,
            highlight=False,
        )
        return EXIT_INVALID
    async with backquant_client(settings) as client:
        try:
            snap = await client.levels(sym, ["candles", "spot", "expected_move", "max_pain"])
        except FetchError as exc:
            err.print(f"gexbot chart: {exc}", markup=False, highlight=False)
            return EXIT_FAILED
    png = await asyncio.to_thread(render_chart, snap)
    await asyncio.to_thread(output.write_bytes, png)
    err.print(f"wrote {output} ({len(png) // 1024} KB)", markup=False, highlight=False)
    return EXIT_OK


async def _replay(args: argparse.Namespace, console: Console, err: Console) -> int:
    settings = load_settings()
    if args.rules is not None:
        settings = settings.model_copy(update={"rules": args.rules})
    try:
        symbols = check_request(args.days, args.symbols, args.source, settings.symbols)
        rules = load_rules(
            settings.rules, universe=list(dict.fromkeys([*settings.symbols, *symbols]))
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
        series = await load_series(settings, req, datetime.now(tz=UTC))
    except ReplayInputError as exc:
        err.print(f"gexbot replay: {exc}", markup=False, highlight=False)
        return EXIT_INVALID
    result, skipped, kept = run_replay(rules.rules, series, args.source)
    report(result, result.stats(kept, symbols), skipped, req, console)
    return EXIT_OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _check(console: Console, err: Console) -> int:
    problems: list[str] = []
    try:
        settings = load_settings()
    except SettingsError as exc:
        problems.extend(exc.problems)
        settings = None
    ruleset = None
    if settings is not None:
        problems.extend(settings.unsupported_symbols())
        more, ruleset = startup_problems(settings, need_key=False)
        problems.extend(more)
    for line in problems:
        err.print(line, markup=False, highlight=False, soft_wrap=True)
    if problems or settings is None or ruleset is None:
        err.print(_count(len(problems), "problem"), markup=False, highlight=False)
        return EXIT_INVALID
    covered = ruleset.symbols_covered(settings.symbols)
    console.print(
        f"OK: {_count(len(ruleset.rules), 'rule')}, {_count(len(ruleset.channels), 'channel')}, "
        f"{len(covered)} of {_count(len(settings.symbols), 'symbol')} covered "
        f"({', '.join(covered)})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return EXIT_OK


def _print_bundle(console: Console, bundle: BundleSnapshot) -> None:
    now = datetime.now(tz=UTC)
    for snap in bundle.symbols.values():
        console.print(levels_table(levels_view(snap, now)))


async def _levels(settings: Settings, symbols: list[str], console: Console, err: Console) -> int:
    async with backquant_client(settings) as client:
        try:
            bundle = await client.bundle(symbols, MULTI_INCLUDES, settings.exchanges)
        except FetchError as exc:
            err.print(f"gexbot levels: {exc}", style="red", markup=False, highlight=False)
            return EXIT_FAILED
    bundle = mark_stale(bundle, now=datetime.now(tz=UTC), stale_after=settings.stale_after)
    _print_bundle(console, bundle)
    return EXIT_OK


async def _sim_server(args: argparse.Namespace, console: Console, err: Console) -> int:
    scenario = None
    if args.scenario is not None:
        try:
            scenario = load_scenario(args.scenario)
        except ScenarioError as exc:
            err.print(str(exc), style="red", markup=False, highlight=False)
            return EXIT_INVALID
    config = SimConfig(
        seed=args.seed if scenario is None or scenario.seed is None else scenario.seed,
        refresh=scenario.refresh if scenario and scenario.refresh else args.refresh,
        speed=scenario.speed if scenario and scenario.speed else args.speed,
        walk=scenario.walk if scenario and scenario.walk is not None else True,
        api_version=args.api_version,
    )
    sim = Simulator(config, clock=time.time)
    if scenario is not None:
        apply_scenario(sim, scenario)
    server = SimServer(
        sim,
        api_key=args.api_key,
        rate_limit=args.rate_limit,
        monthly_quota=args.monthly_quota,
        request_log=args.request_log,
    )
    url = await server.start(args.host, args.port)
    console.print(f"simulated BackQuant API on {url}/v2 (key: set with --api-key)")
    console.print(f"try: GEXBOT_API_URL={url} GEXBOT_API_KEY=<key> gexbot levels BTC")
    try:
        await _until_signal()
    finally:
        await server.stop()
    return EXIT_OK


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def startup_problems(settings: Settings, *, need_key: bool) -> tuple[list[str], RuleSet | None]:
    """Every reason the bot cannot start (the same report as `gexbot check`)."""
    problems: list[str] = []
    if need_key and (settings.api_key is None or not settings.api_key.get_secret_value()):
        problems.append("GEXBOT_API_KEY: required (your BackQuant API key)")
    ruleset = None
    try:
        ruleset = load_rules(settings.rules, universe=settings.symbols)
    except RulesError as exc:
        problems.extend(str(p) for p in exc.problems)
    else:
        problems.extend(channel_problems(settings, ruleset))
    problems.extend(slack_endpoint_problems(settings))
    return problems, ruleset


async def _serve(
    settings: Settings,
    console: Console,
    err: Console,
    *,
    once: bool = False,
    dry_run: bool = False,
    stop: asyncio.Event | None = None,
    quiet_cycles: bool = False,
) -> int:
    problems, ruleset = startup_problems(settings, need_key=True)
    for line in settings.unsupported_symbols():
        logging.getLogger("gexbot").warning("%s (it will be reported as invalid)", line)
    if problems or ruleset is None:
        for line in problems:
            err.print(line, markup=False, highlight=False, soft_wrap=True)
        err.print(f"gexbot did not start: {_count(len(problems), 'problem')}", markup=False)
        return EXIT_FAILED
    engine = make_engine(settings.database_url)
    lock = sqlite_lock(engine)
    try:
        if lock is not None:
            lock.acquire()
        if engine.dialect.name == "postgresql":
            require_current_schema(engine)  # replicas share it: `gexbot db upgrade` migrates
        else:
            migrate(engine)
        if engine.dialect.name == "sqlite":
            with engine.begin() as conn:
                orphans = release_orphans(conn)
            if orphans:
                logging.getLogger("gexbot").warning(
                    "%d message(s) were being sent when the last run stopped; sending again",
                    orphans,
                )
        notifiers = build_notifiers(settings, console=console)
        async with backquant_client(settings) as client:
            watcher = RulesWatcher(settings.rules, ruleset, universe=settings.symbols)
            metrics = Metrics()
            leadership = build_leadership(settings, engine, metrics)
            bot = Bot(
                settings,
                engine=engine,
                client=client,
                watcher=watcher,
                notifiers=notifiers,
                leadership=leadership,
                metrics=metrics,
                quiet_cycles=quiet_cycles,
            )
            if once:
                return await _once(bot, console, dry_run=dry_run)
            service = ChatService(
                engine=engine,
                client=client,
                rules=lambda: bot.watcher.rules,
                latest=bot.chat_latest,
                charts=bot.charts,
                describe=None if isinstance(leadership, SoleInstance) else leadership.describe,
                universe=settings.symbols,
                fresh_for=settings.poll_interval,
                stale_after=settings.stale_after,
                clock=utcnow,
            )
            telegram_commands = build_telegram_commands(settings, engine, service, leadership)
            if telegram_commands is not None:
                bot.chat_loops.append(telegram_commands.run)
            slack_commands = build_slack_commands(settings, service, engine)
            if slack_commands is not None:
                bot.chat_loops.append(slack_commands.run)
                if settings.slack_signing_secret is not None:
                    endpoint = SlackEndpoint(
                        slack_commands, settings.slack_signing_secret.get_secret_value()
                    )
                    bot.http_routes.append(endpoint.add_routes)
            stop = stop or asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, stop.set)
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signal.SIGHUP, bot.reload_requested.set)
            logging.getLogger("gexbot").info(
                "gexbot started: %d rules, %d symbols, polling %s every %gs, database %s, "
                "instance %s%s",
                len(ruleset.rules),
                len(settings.symbols),
                settings.api_url,
                settings.poll_interval,
                masked(settings.database_url),
                settings.instance,
                ""
                if isinstance(leadership, SoleInstance)
                else f" (replica: polls while it holds the {settings.leader_lease:g}s lease)",
            )
            await bot.run(stop)
            logging.getLogger("gexbot").info("gexbot stopped")
    finally:
        if lock is not None:
            lock.release()
        engine.dispose()
    return EXIT_OK


async def _once(bot: Bot, console: Console, *, dry_run: bool) -> int:
    try:
        if not await bot.leadership.try_lead():
            leader = bot.leadership.describe().get("leader")
            console.print(
                f"not polling: replica {leader or '?'} is running on this database and polls "
                "for it (see its /status)",
                markup=False,
                soft_wrap=True,
            )
            return EXIT_FAILED
        report, _ = await bot.poll_once(dry_run=dry_run)
        if bot.state.last_failure is not None:
            console.print(f"poll failed: {bot.state.last_failure}", markup=False)
        events = report.events if report else ()
        if dry_run:
            if not events:
                console.print("dry run: nothing would be sent", markup=False)
            for event in events:
                console.print(f"would send: {plain_text([render(event)])}", markup=False)
        else:
            await bot.dispatcher.run_once()
    finally:
        await bot.leadership.release()
        bot.leadership.close()
        for notifier in bot._notifiers.values():
            await notifier.close()
    return EXIT_FAILED if bot.state.last_failure is not None else EXIT_OK


async def _demo(args: argparse.Namespace, console: Console, err: Console) -> int:
    sim = Simulator(replace(DEMO_CONFIG, seed=args.seed), clock=time.time)
    server = SimServer(sim)
    url = await server.start()
    base = load_settings()
    with tempfile.TemporaryDirectory(prefix="gexbot-demo-") as tmp:
        overrides: dict[str, object] = {
            "api_url": url,
            "api_key": SecretStr(DEFAULT_KEY),
            "poll_interval": DEMO_CONFIG.refresh,
        }
        if "database_url" not in base.model_fields_set:
            overrides["database_url"] = f"sqlite:///{Path(tmp) / 'demo.db'}"
        settings = base.model_copy(update=overrides)
        console.print(
            f"[bold]gexbot demo[/]: the bot on a simulated BackQuant API at {url} (a fast market), "
            f"rules from {settings.rules}/, database {masked(settings.database_url)}.\n"
            "Alerts print below as they fire (usually within a minute). Ctrl-C stops.\n"
        )
        if args.levels:
            async with backquant_client(settings) as client:
                _print_bundle(console, await client.bundle(settings.symbols, MULTI_INCLUDES))
        stop = asyncio.Event()
        if args.duration:
            asyncio.get_running_loop().call_later(args.duration, stop.set)
        try:
            return await _serve(settings, console, err, stop=stop, quiet_cycles=True)
        finally:
            await server.stop()


if __name__ == "__main__":
    sys.exit(main())
