"""`gexbot run`, `gexbot once` and `gexbot demo`: the bot itself."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import tempfile
from dataclasses import replace
from pathlib import Path

from pydantic import SecretStr
from rich.console import Console

from gexbot.app import compose, epoch, real_runtime
from gexbot.cli import EXIT_FAILED, EXIT_OK, count
from gexbot.cli.check import startup_problems
from gexbot.cli.levels import one_look, print_bundle
from gexbot.cli.signals import on_signals
from gexbot.core.present.render import plain_text, render
from gexbot.loops.leadership import SoleInstance
from gexbot.loops.service import Service
from gexbot.settings import Settings, load_settings
from gexbot.sim.market import DEMO_CONFIG, Simulator
from gexbot.sim.server import DEFAULT_KEY, SimServer
from gexbot.store.engine import masked

log = logging.getLogger("gexbot")


async def serve(
    settings: Settings,
    console: Console,
    err: Console,
    *,
    once: bool = False,
    dry_run: bool = False,
    stop: asyncio.Event | None = None,
    quiet_cycles: bool = False,
) -> int:
    problems, ruleset = startup_problems(settings, need_key=settings.levels_source != "chains")
    for line in settings.unsupported_symbols():
        log.warning("%s (it will be reported as invalid)", line)
    if problems or ruleset is None:
        for line in problems:
            err.print(line, markup=False, highlight=False, soft_wrap=True)
        err.print(f"gexbot did not start: {count(len(problems), 'problem')}", markup=False)
        return EXIT_FAILED
    async with compose(
        settings, ruleset, console, runtime=real_runtime(), quiet_cycles=quiet_cycles
    ) as bot:
        if once:
            return await _once(bot, console, dry_run=dry_run)
        stop = stop or asyncio.Event()
        on_signals(stop, reload=bot.reload.requested)
        sole = isinstance(bot.leadership, SoleInstance)
        log.info(
            "gexbot started: %d rules, %d symbols, polling %s every %gs, database %s, "
            "instance %s%s",
            len(ruleset.rules),
            len(settings.symbols),
            {
                "backquant": settings.api_url,
                "chains": "the option chains of " + ", ".join(settings.chain_venues),
                "both": f"{settings.api_url} (the option chains of "
                + ", ".join(settings.chain_venues)
                + " as cross-check and fallback)",
            }[settings.levels_source],
            settings.poll_interval,
            masked(settings.database_url),
            settings.instance,
            ""
            if sole
            else f" (replica: polls while it holds the {settings.leader_lease:g}s lease)",
        )
        await bot.run(stop)
        log.info("gexbot stopped")
    return EXIT_OK


async def _once(bot: Service, console: Console, *, dry_run: bool) -> int:
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
        report, _ = await bot.poll.once(dry_run=dry_run)
        if bot.poll.state.last_failure is not None:
            console.print(f"poll failed: {bot.poll.state.last_failure}", markup=False)
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
        await bot.close_notifiers()
    return EXIT_FAILED if bot.poll.state.last_failure is not None else EXIT_OK


async def demo(args: argparse.Namespace, console: Console, err: Console) -> int:
    seed = DEMO_CONFIG.seed if args.seed is None else args.seed
    sim = Simulator(replace(DEMO_CONFIG, seed=seed), clock=epoch)
    server = SimServer(sim)
    url = await server.start()
    base = load_settings()
    with tempfile.TemporaryDirectory(prefix="gexbot-demo-") as tmp:
        overrides: dict[str, object] = {
            "api_url": url,
            "api_key": SecretStr(DEFAULT_KEY),
            "poll_interval": DEMO_CONFIG.refresh,
            # The simulator serves the venues' chains too, from the same market.
            "deribit_url": url,
            "bybit_url": url,
            "okx_url": url,
            "chain_refresh": DEMO_CONFIG.refresh,
        }
        if "source" not in base.model_fields_set:  # a newcomer sees both, and the cross-check
            overrides["source"] = "both"
        if "cross_check_every" not in base.model_fields_set:
            overrides["cross_check_every"] = 5 * DEMO_CONFIG.refresh
        if "database_url" not in base.model_fields_set:
            overrides["database_url"] = f"sqlite:///{Path(tmp) / 'demo.db'}"
        if not base.http_port:  # the web console, on a free port of this machine
            overrides["http_port"] = _free_port(base.http_host)
        settings = base.model_copy(update=overrides)
        what = {
            "backquant": "BackQuant API",
            "chains": "set of Deribit, Bybit and OKX option chains (levels computed by gexbot)",
            "both": "BackQuant API, with the Deribit, Bybit and OKX option chains as "
            "cross-check and fallback",
        }[settings.levels_source]
        console.print(
            f"[bold]gexbot demo[/]: the bot on a simulated {what} at {url} (a fast market), "
            f"rules from {settings.rules}/, database {masked(settings.database_url)}.\n"
            f"Web console: http://{settings.http_host}:{settings.http_port}/\n"
            "Alerts print below as they fire (usually within a minute). Ctrl-C stops.\n"
        )
        if settings.levels_source == "both":
            console.print(
                f"The chains cross-check BackQuant every {settings.cross_check_every:g}s: each "
                "symbol's card on the console says whether they agree; a lasting "
                "disagreement or a fallback to the chains is a warning here.\n"
            )
        if args.levels:
            print_bundle(console, await one_look(settings, settings.symbols))
        stop = asyncio.Event()
        if args.duration:
            asyncio.get_running_loop().call_later(args.duration, stop.set)
        try:
            return await serve(settings, console, err, stop=stop, quiet_cycles=True)
        finally:
            await server.stop()


def _free_port(host: str) -> int:
    """A port nobody listens on now (the demo's console; a race with another program taking it
    first only costs the demo its console, reported at start)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
