"""The simulated market over long runs: net GEX and wall distances after a day of the demo
and thirty days of the default configuration, per symbol and seed.

.venv/bin/python bench/sim_stationary.py [--seeds 11 2026]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.profiling import profile_if_asked
from gexbot.sim.market import DEMO_CONFIG, SimConfig, Simulator

START = 1_795_000_000.0


class _Clock:
    def __init__(self) -> None:
        self.t = START

    def __call__(self) -> float:
        return self.t


def run(name: str, config: SimConfig, seconds: float) -> None:
    clock = _Clock()
    sim = Simulator(config, clock=clock)
    start = {s: sim.levels(s) for s in sim.states}
    crosses = dict.fromkeys(sim.states, 0)
    side = {s: lv.spot > (lv.hvl or lv.spot) for s, lv in start.items()}
    t0 = time.perf_counter()
    for _ in range(round(seconds / config.refresh)):
        clock.t += config.refresh
        sim.advance()
    elapsed = time.perf_counter() - t0
    for sym, st in sim.states.items():
        for _, spot, lv in st.history:
            if lv.hvl is not None and (spot > lv.hvl) != side[sym]:
                crosses[sym] += 1
                side[sym] = spot > lv.hvl
    print(f"\n{name} (seed {config.seed}): {seconds / 86400:g} days in {elapsed:.1f} s")
    print(
        f"{'symbol':9} {'net GEX start':>14} {'net GEX end':>12} {'max |end/start|':>15} "
        f"{'CR dist':>8} {'PS dist':>8} {'med CR':>7} {'med PS':>7} {'HVL x/day':>9}"
    )
    for sym, st in sim.states.items():
        end = sim.levels(sym)
        ratios = [abs(lv.net_gex / start[sym].net_gex) for _, _, lv in st.history]
        cr = [(lv.call_walls[0] or 0) / s - 1 for _, s, lv in st.history]
        ps = [1 - (lv.put_walls[0] or 0) / s for _, s, lv in st.history]
        assert end.call_walls[0] is not None
        assert end.put_walls[0] is not None
        print(
            f"{sym:9} {start[sym].net_gex:14.3e} {end.net_gex:12.3e} {max(ratios):15.2f} "
            f"{end.call_walls[0] / end.spot - 1:8.1%} {1 - end.put_walls[0] / end.spot:8.1%} "
            f"{statistics.median(cr):7.1%} {statistics.median(ps):7.1%} "
            f"{crosses[sym] / (seconds / 86400):9.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="*", default=[DEMO_CONFIG.seed])
    args = parser.parse_args()
    for seed in args.seeds:
        run("demo configuration", replace(DEMO_CONFIG, seed=seed), 86400.0)
        run("default configuration", SimConfig(seed=seed), 30 * 86400.0)


if __name__ == "__main__":
    with profile_if_asked():
        main()
