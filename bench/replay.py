"""Replay speed: 30 days x 4 symbols at 30-second resolution (345,600 snapshots), 50 rules.

The history comes from the simulator's own past (as `/v2/gex/stress-history` serves it). Times
what `gexbot replay` runs (the column replay), then the snapshot-by-snapshot reference on the
same history, and checks that both found the same alerts. Prints wall times, snapshots per
second and the peak memory.

    .venv/bin/python bench/replay.py [--profile]
"""

from __future__ import annotations

import gc
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.profiling import profile_if_asked
from gexbot.cli.replay import run_replay
from gexbot.core.replay import frames, history_to_snapshots, replay
from gexbot.core.rules import Condition, ConditionKind, Direction, Rule
from gexbot.core.snapshot import Level
from gexbot.core.wire import stress_history_points
from gexbot.sim import payloads
from gexbot.sim.market import SimConfig, Simulator

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


def main() -> None:
    t0 = time.perf_counter()
    sim = Simulator(SimConfig(seed=1, history_step=30.0), clock=time.time)
    pages = {sym: payloads.stress_history(sim, sym, 30) for sym in SYMBOLS}
    built = time.perf_counter() - t0  # the upstream's work (the simulator), not ours
    t_parse = time.perf_counter()
    # What `gexbot replay --source api` does with the fetched pages: the client's parser,
    # then snapshots.
    series = {
        sym: history_to_snapshots(sym, stress_history_points(page)) for sym, page in pages.items()
    }
    prepared = time.perf_counter() - t_parse
    t1 = time.perf_counter()
    result, _, _ = run_replay(rules(), series, "api")  # what `gexbot replay` runs
    wall = time.perf_counter() - t1
    print(
        f"history: {result.snapshots:,} snapshots ({len(SYMBOLS)} symbols, 30 days at 30 s), "
        f"parsed and prepared in {prepared:.1f} s (the simulator built them in {built:.1f} s)"
    )
    print(
        f"replay of 50 rules (columns): {wall:.2f} s, {result.snapshots / wall:,.0f} snapshots/s, "
        f"{len(result.alerts):,} alerts"
    )
    t2 = time.perf_counter()
    gc.disable()
    reference = replay(rules(), frames(series))
    gc.enable()
    slow = time.perf_counter() - t2
    same = [(a.at, a.rule_id, a.symbol, a.reason, a.event) for a in result.alerts] == [
        (a.at, a.rule_id, a.symbol, a.reason, a.event) for a in reference.alerts
    ]
    print(
        f"reference (snapshot by snapshot): {slow:.2f} s; same alerts: {same}; "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    with profile_if_asked():
        main()
