"""Chart render time: 20 renders per symbol from the simulator's levels and candles.

.venv/bin/python bench/charts.py
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.profiling import profile_if_asked
from gexbot.adapters.backquant import BackQuantClient, build_http_client
from gexbot.charts.render import render_chart
from gexbot.sim.market import Simulator
from gexbot.sim.server import SimServer

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "HYPEUSDT"]


async def main() -> None:
    server = SimServer(Simulator(clock=time.time), api_key="k")
    await server.start()
    async with build_http_client(server.url, "k") as http:
        client = BackQuantClient(http, wall_clock=time.time, api_key="k", rng=random.Random(0))
        snaps = [
            await client.levels(s, ["candles", "spot", "expected_move", "max_pain"])
            for s in SYMBOLS
        ]
    await server.stop()
    render_chart(snaps[0])  # warm-up: font cache
    times = []
    for snap in snaps:
        for _ in range(20):
            t0 = time.perf_counter()
            png = render_chart(snap)
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    print(
        f"{len(times)} charts (1200x675 PNG, ~{len(png) // 1024} KB): median "
        f"{statistics.median(times):.0f} ms, p95 {times[int(0.95 * len(times))]:.0f} ms"
    )


if __name__ == "__main__":
    with profile_if_asked():
        asyncio.run(main())
