"""Replay speed: 30 days x 4 symbols at 30-second resolution (345,600 snapshots), 50 rules.

The history comes from the simulator's own past (as `/v2/gex/stress-history` serves it). Times
what `gexbot replay` runs (the column replay), then the snapshot-by-snapshot reference on the
same history, and checks that both found the same alerts. Prints wall times, snapshots per
second and the peak memory.

    .venv/bin/python bench/replay.py [--runs N] [--profile]
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.profiling import profile_if_asked
from gexbot.cli.replay import run_replay
from gexbot.core.language.model import Condition, ConditionKind, Direction, Rule
from gexbot.core.market.snapshot import Level
from gexbot.core.market.wire import stress_history
from gexbot.core.replay.history import SymbolHistory
from gexbot.sim import payloads
from gexbot.sim.market import SimConfig, Simulator
from tests.reference_replay import frames, history_to_snapshots, replay

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "HYPEUSDT"]
LEVELS = [Level.HVL, Level.CALL_RESISTANCE, Level.PUT_SUPPORT]


def rules(n: int = 50) -> list[Rule]:
    rng = random.Random(50)
    out = []
    for i in range(n):
        kind = [
            ConditionKind.CROSSES,
            ConditionKind.NEAR,
            ConditionKind.ABOVE,
            ConditionKind.BELOW,
            ConditionKind.MOVED,
        ][i % 5]
        level = rng.choice(LEVELS)
        cond = {
            ConditionKind.CROSSES: Condition(
                kind,
                level=level,
                buffer_pct=rng.choice([0, 0.1]),
                direction=rng.choice(list(Direction)),
            ),
            ConditionKind.NEAR: Condition(kind, level=level, within_pct=rng.choice([0.25, 0.5])),
            ConditionKind.MOVED: Condition(kind, level=level, by_pct=1.0),
        }.get(kind, Condition(kind, level=level))
        out.append(
            Rule(
                id=f"r{i}",
                condition=cond,
                symbols=None,
                notify=("tty",),
                cooldown=rng.choice([0.0, 900.0]),
                hold=rng.choice([0.0, 60.0]),
            )
        )
    return out


def main(runs: int) -> None:
    t0 = time.perf_counter()
    sim = Simulator(SimConfig(seed=1, history_step=30.0), clock=time.time)
    pages = {sym: payloads.stress_history(sim, sym, 30) for sym in SYMBOLS}
    built = time.perf_counter() - t0  # the upstream's work (the simulator), not ours
    preps, walls = [], []
    for _ in range(runs):
        t_parse = time.perf_counter()
        # What `gexbot replay --source api` does with the fetched pages: the client's parser,
        # then columns.
        stress = {sym: stress_history(page) for sym, page in pages.items()}
        series = {sym: SymbolHistory.of_stress(sym, s) for sym, s in stress.items()}
        preps.append(time.perf_counter() - t_parse)
        t1 = time.perf_counter()
        result, _, _ = run_replay(rules(), series, "api")  # what `gexbot replay` runs
        walls.append(time.perf_counter() - t1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    prepared, wall = statistics.median(preps), statistics.median(walls)
    print(
        f"history: {result.snapshots:,} snapshots ({len(SYMBOLS)} symbols, 30 days at 30 s), "
        f"parsed into columns in {prepared:.2f} s, median of {runs} "
        f"({min(preps):.2f}–{max(preps):.2f}; goal ≤ 2 s; the simulator built the pages in "
        f"{built:.1f} s)"
    )
    print(
        f"replay of 50 rules (columns): {wall:.2f} s, median of {runs} "
        f"({min(walls):.2f}–{max(walls):.2f}; goal ≤ 1 s), "
        f"{result.snapshots / wall:,.0f} snapshots/s, {len(result.alerts):,} alerts; "
        f"peak RSS {peak:.0f} MB (goal ≤ 500 MB; the simulator's pages included)"
    )
    t2 = time.perf_counter()
    gc.disable()
    reference = replay(
        rules(), frames({sym: history_to_snapshots(sym, s) for sym, s in stress.items()})
    )
    gc.enable()
    slow = time.perf_counter() - t2
    same = [(a.at, a.rule_id, a.symbol, a.reason, a.event) for a in result.alerts] == [
        (a.at, a.rule_id, a.symbol, a.reason, a.event) for a in reference.alerts
    ]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"reference (snapshot by snapshot, the live path): {slow:.2f} s; same alerts: {same}; "
        f"peak RSS with its snapshots {peak:.0f} MB"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="column replays to take the median of")
    with profile_if_asked():
        main(parser.parse_args().runs)
