"""The `gexbot` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from gexbot.adapters.backquant import MULTI_INCLUDES, FetchError
from gexbot.app import backquant_client, channel_problems
from gexbot.console import levels_table
from gexbot.core.levels_view import levels_view
from gexbot.core.rulefile import RulesError, rule_file_json_schema
from gexbot.core.snapshot import BundleSnapshot
from gexbot.core.symbols import normalize_symbol
from gexbot.core.wire import mark_stale
from gexbot.rules_loader import load_rules
from gexbot.settings import Settings, SettingsError, load_settings
from gexbot.sim.market import DEMO_CONFIG, SimConfig, Simulator
from gexbot.sim.scenario import ScenarioError, apply_scenario, load_scenario
from gexbot.sim.server import DEFAULT_KEY, SimServer
from gexbot.store.engine import DatabaseError, make_engine, masked, migrate
from gexbot.store.prune import prune

EXIT_OK = 0
EXIT_INVALID = 1  # bad settings, rules or arguments: fix the input
EXIT_FAILED = 2  # upstream or runtime failure


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gexbot", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lv = sub.add_parser("levels", help="print current levels (needs GEXBOT_API_KEY)")
    lv.add_argument("symbols", nargs="*", help="e.g. BTC ETHUSDT (default: GEXBOT_SYMBOLS)")

    sub.add_parser("check", help="validate settings and rules; exit 1 and list every problem")
    sub.add_parser("schema", help="print the JSON Schema of rule files")
    db = sub.add_parser("db", help="database maintenance")
    db.add_argument(
        "action",
        choices=["upgrade", "prune"],
        help="upgrade: apply migrations; prune: delete what is older than GEXBOT_RETENTION_DAYS",
    )

    demo = sub.add_parser("demo", help="the simulator on 127.0.0.1 and live levels, no key")
    demo.add_argument("--cycles", type=int, default=0, help="stop after N refreshes (0: never)")
    demo.add_argument("--seed", type=int, default=DEMO_CONFIG.seed)

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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    console = Console()
    err = Console(stderr=True)
    try:
        if args.command == "check":
            return _check(console, err)
        if args.command == "db":
            return _db(args.action, console)
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
            return asyncio.run(_demo(args, console))
    except SettingsError as exc:
        for line in exc.problems:
            err.print(line, style="red", markup=False, highlight=False)
        return EXIT_INVALID
    except DatabaseError as exc:
        err.print(str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_INVALID


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
        f"pruned {done.sent} sent messages, {done.history} snapshots and {done.poll_runs} poll "
        f"runs older than {settings.retention_days:g} days",
        markup=False,
        highlight=False,
    )
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
        try:
            ruleset = load_rules(settings.rules, universe=settings.symbols)
        except RulesError as exc:
            problems.extend(str(p) for p in exc.problems)
        else:
            problems.extend(channel_problems(settings, ruleset))
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


async def _demo(args: argparse.Namespace, console: Console) -> int:
    sim = Simulator(replace(DEMO_CONFIG, seed=args.seed), clock=time.time)
    server = SimServer(sim)
    url = await server.start()
    settings = load_settings(api_url=url, api_key=DEFAULT_KEY)
    console.print(f"[bold]gexbot demo[/]: simulated BackQuant API on {url} (fast market)")
    console.print("Levels refresh every 2 s; Ctrl-C stops.\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    cycles = 0
    try:
        async with backquant_client(settings) as client:
            while not stop.is_set():
                bundle = await client.bundle(settings.symbols, MULTI_INCLUDES)
                bundle = mark_stale(
                    bundle, now=datetime.now(tz=UTC), stale_after=settings.stale_after
                )
                console.rule(datetime.now(tz=UTC).strftime("%H:%M:%S UTC"))
                _print_bundle(console, bundle)
                cycles += 1
                if args.cycles and cycles >= args.cycles:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), DEMO_CONFIG.refresh)
    finally:
        await server.stop()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
