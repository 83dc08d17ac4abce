"""One poll of the universe: the bundle endpoint versus four single-symbol calls.

Runs the simulator on 127.0.0.1 with 50 ms injected per request (a realistic WAN round trip)
and prints round trips, median wall time and the ratio for each way of polling.

    .venv/bin/python bench/bundle_vs_single.py [--repeat N] [--delay SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.profiling import profile_if_asked
from gexbot.adapters.backquant import BackQuantClient, build_http_client
from gexbot.core.market.symbols import SUPPORTED_SYMBOLS
from gexbot.sim.market import SimConfig, Simulator
from gexbot.sim.server import SimServer

UNIVERSE = list(SUPPORTED_SYMBOLS)


async def _measure(
    name: str, server: SimServer, poll: Callable[[], Awaitable[object]], repeat: int
) -> tuple[str, int, float]:
    await poll()  # warm the connection pool
    times = []
    before = len(server.request_log)
    for _ in range(repeat):
        t0 = time.perf_counter()
        await poll()
        times.append(time.perf_counter() - t0)
    trips = (len(server.request_log) - before) // repeat
    return name, trips, statistics.median(times)


async def main(repeat: int, delay: float) -> None:
    sim = Simulator(SimConfig(seed=1), clock=time.time)
    sim.delay = delay
    server = SimServer(sim, api_key="bench", rate_limit=100_000)
    await server.start()
    try:
        async with build_http_client(server.url, "bench") as http:
            client = BackQuantClient(
                http, wall_clock=time.time, api_key="bench", rng=random.Random(0)
            )

            async def bundle() -> object:
                return await client.bundle(UNIVERSE, ["expected_move", "max_pain"])

            async def sequential() -> object:
                return [await client.levels(s, ["expected_move", "max_pain"]) for s in UNIVERSE]

            async def concurrent() -> object:
                return await asyncio.gather(
                    *(client.levels(s, ["expected_move", "max_pain"]) for s in UNIVERSE)
                )

            rows = [
                await _measure("bundle (1 call)", server, bundle, repeat),
                await _measure("single x4, sequential", server, sequential, repeat),
                await _measure("single x4, concurrent", server, concurrent, repeat),
            ]
    finally:
        await server.stop()
    base = rows[0][2]
    print(f"poll of {len(UNIVERSE)} symbols, {delay * 1000:.0f} ms per request, median of {repeat}")
    print(f"{'method':<24}{'round trips':>12}{'wall ms':>10}{'vs bundle':>11}{'rate budget':>13}")
    for name, trips, wall in rows:
        print(f"{name:<24}{trips:>12}{wall * 1000:>10.1f}{wall / base:>10.2f}x{trips:>9}/poll")


if __name__ == "__main__":
    with profile_if_asked():
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--repeat", type=int, default=20)
        parser.add_argument("--delay", type=float, default=0.05)
        args = parser.parse_args()
        asyncio.run(main(args.repeat, args.delay))
