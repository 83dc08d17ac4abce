"""The `gexbot` command line.

Arguments are parsed first; each command then imports only what it uses, so `--help`, `check`
and `schema` never load the chat clients, SQLAlchemy or matplotlib.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK = 0
EXIT_INVALID = 1  # bad settings, rules or arguments: fix the input
EXIT_FAILED = 2  # upstream or runtime failure


def count(n: int, noun: str) -> str:
    """`n noun`, with the plural when n is not 1."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gexbot", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lv = sub.add_parser(
        "levels", help="print current levels (BackQuant with GEXBOT_API_KEY, else the chains)"
    )
    lv.add_argument("symbols", nargs="*", help="e.g. BTC ETHUSDT (default: GEXBOT_SYMBOLS)")
    lv.add_argument(
        "--format", choices=["table", "json"], default="table", help="tables, or one JSON document"
    )

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

    al = sub.add_parser("alerts", help="list or remove the personal alerts created from chat")
    al.add_argument("action", nargs="?", choices=["list", "rm"], default="list")
    al.add_argument("id", nargs="?", default=None, help="rm: the alert's id (12 or #12)")
    al.add_argument("--chat", default=None, help="list: one chat only (telegram:42, slack:C0123)")

    demo = sub.add_parser("demo", help="the whole bot on the built-in simulator, no key needed")
    demo.add_argument("--seed", type=int, default=None, help="default: the demo market's own")
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
    srv.add_argument("--api-key", default="demo", help="the only key accepted (default: demo)")
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
    if args.command == "schema":  # needs neither settings nor logging
        import json

        from gexbot.core.language.rulefile import rule_file_json_schema

        sys.stdout.write(json.dumps(rule_file_json_schema(), indent=2) + "\n")
        return EXIT_OK
    # Imported only now: `--help` and argument errors never pay for them.
    from rich.console import Console

    from gexbot.logs import configure as configure_logging
    from gexbot.settings import SettingsError
    from gexbot.store.errors import DatabaseError

    configure_logging(_log_format(), verbose=args.verbose)
    if args.command not in ("run", "demo") and not args.verbose:
        logging.getLogger("gexbot").setLevel(logging.WARNING)
    console = Console()
    err = Console(stderr=True, soft_wrap=True)  # an error line stays one line, to copy or grep
    try:
        return _dispatch(args, console, err)
    except SettingsError as exc:
        for line in exc.problems:
            err.print(line, style="red", markup=False, highlight=False)
        if args.command in ("run", "once", "demo"):
            err.print(f"gexbot did not start: {count(len(exc.problems), 'problem')}")
            return EXIT_FAILED
        return EXIT_INVALID
    except DatabaseError as exc:
        err.print(str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_OK


def _dispatch(args: argparse.Namespace, console: Console, err: Console) -> int:
    import asyncio

    from gexbot.settings import load_settings

    command = args.command
    if command == "check":
        from gexbot.cli.check import check

        return check(console, err)
    if command == "db":
        from gexbot.cli.db import db

        return db(args.action, console)
    if command == "alerts":
        from gexbot.cli.alerts import alerts

        return alerts(args.action, args.id, args.chat, console, err)
    if command in ("levels", "chart"):
        from gexbot.cli.levels import chart, levels

        if command == "chart":
            return asyncio.run(chart(load_settings(), args.symbol, args.output, err))
        return asyncio.run(levels(load_settings(), args.symbols, console, err, fmt=args.format))
    if command == "replay":
        from gexbot.cli.replay import replay

        return asyncio.run(replay(args, console, err))
    if command == "sim-server":
        from gexbot.cli.sim import sim_server

        return asyncio.run(sim_server(args, console, err))
    from gexbot.cli.serve import demo, serve

    if command == "demo":
        return asyncio.run(demo(args, console, err))
    if command == "run":
        return asyncio.run(serve(load_settings(), console, err))
    if command == "once":
        return asyncio.run(serve(load_settings(), console, err, once=True, dry_run=args.dry_run))
    return EXIT_INVALID


def _log_format() -> str:
    """GEXBOT_LOG_FORMAT from the environment or `.env`; text when the settings are invalid
    (the command itself then reports them)."""
    from gexbot.settings import SettingsError, load_settings

    try:
        return load_settings().log_format
    except SettingsError:
        return "text"
