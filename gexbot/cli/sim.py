"""`gexbot sim-server`: the simulated BackQuant API and venues' chains alone."""

from __future__ import annotations

import argparse

from rich.console import Console

from gexbot.app import epoch
from gexbot.cli import EXIT_INVALID, EXIT_OK
from gexbot.cli.signals import until_signal
from gexbot.sim.market import SimConfig, Simulator
from gexbot.sim.scenario import ScenarioError, apply_scenario, load_scenario
from gexbot.sim.server import SimServer


async def sim_server(args: argparse.Namespace, console: Console, err: Console) -> int:
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
    sim = Simulator(config, clock=epoch)
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
    console.print(
        f"simulated venues' public option chains: Deribit {url}/api/v2/public, "
        f"Bybit {url}/v5/market, OKX {url}/api/v5/public"
    )
    console.print(f"try: GEXBOT_API_URL={url} GEXBOT_API_KEY=<key> gexbot levels BTC")
    console.print(
        f"  or: GEXBOT_SOURCE=chains GEXBOT_DERIBIT_URL={url} GEXBOT_BYBIT_URL={url} "
        f"GEXBOT_OKX_URL={url} gexbot levels BTC"
    )
    try:
        await until_signal()
    finally:
        await server.stop()
    return EXIT_OK
