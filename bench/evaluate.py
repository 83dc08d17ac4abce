"""One evaluation cycle over 8 symbols with 100, 1,000 and 10,000 rules of mixed kinds.

Snapshots come from the simulator's market (4 symbols, each twice under another name), spot
moving every cycle; statuses carry over between cycles as in the live bot. Prints median and
p99 milliseconds per cycle (evaluate + decide) and microseconds per rule x symbol pair.

    .venv/bin/python bench/evaluate.py [--cycles N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.profiling import profile_if_asked
from gexbot.core.alerts.cycle import run_rules
from gexbot.core.alerts.evaluate import index_rules
from gexbot.core.alerts.states import StatusBook
from gexbot.core.language.model import Band, Condition, ConditionKind, Direction, Rule
from gexbot.core.market.snapshot import BundleSnapshot, Level, SymbolSnapshot
from gexbot.core.market.wire import entry_to_snapshot
from gexbot.sim import payloads
from gexbot.sim.market import DEMO_CONFIG, SimConfig, Simulator

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "HYPEUSDT"]
NAMES = [*SYMBOLS, *(s.replace("USDT", "2USDT") for s in SYMBOLS)]
LEVELS = [lv for lv in Level if not lv.value.startswith("expected_move")]
INCLUDES = {"expected_move", "max_pain"}


def make_rules(n: int, rng: random.Random) -> list[Rule]:
    """n rules spread over every condition kind, level and option."""
    rules = []
    for i in range(n):
        kind = list(ConditionKind)[i % len(ConditionKind)]
        level = rng.choice(LEVELS)
        if kind is ConditionKind.CROSSES:
            direction = rng.choice(list(Direction))
            cond = Condition(
                kind, level=level, direction=direction, buffer_pct=rng.choice([0, 0.1])
            )
        elif kind is ConditionKind.NEAR:
            cond = Condition(kind, level=level, within_pct=rng.choice([0.25, 0.5, 1.0]))
        elif kind in (ConditionKind.ABOVE, ConditionKind.BELOW):
            cond = Condition(kind, level=level)
        elif kind is ConditionKind.OUTSIDE:
            cond = Condition(kind, band=rng.choice(list(Band)))
        else:
            cond = Condition(kind, level=level, by_pct=rng.choice([0.5, 1.0, 2.0]))
        rules.append(
            Rule(
                id=f"r{i}",
                condition=cond,
                symbols=None,
                notify=("tty",),
                cooldown=rng.choice([0.0, 900.0]),
                hold=rng.choice([0.0, 0.0, 60.0]),
                repeat=None,
                resolve=rng.random() < 0.3 and not kind.is_event,
            )
        )
    return rules


MARKETS = {
    "live-like (30 s refresh)": SimConfig(seed=1, refresh=30.0, speed=1.0),
    "demo (2 s refresh, 1000x activity)": DEMO_CONFIG,
}


def snapshots(cycles: int, config: SimConfig) -> list[BundleSnapshot]:
    """A bundle per cycle from the simulated market."""
    clock = [1_795_000_000.0]
    sim = Simulator(config, clock=lambda: clock[0])
    out = []
    for _ in range(cycles):
        clock[0] += config.refresh
        sim.advance()
        snaps: dict[str, SymbolSnapshot] = {}
        for name in NAMES:
            base = name.replace("2USDT", "USDT")
            entry = payloads.entry(sim, base, INCLUDES, positioning="std", scale=1.0)
            snaps[name] = entry_to_snapshot(name, entry)
        out.append(
            BundleSnapshot(
                received_at=datetime.fromtimestamp(clock[0], tz=UTC),
                symbols=MappingProxyType(snaps),
            )
        )
    return out


def bench(n_rules: int, frames: list[BundleSnapshot]) -> tuple[float, float, int]:
    """Median and p99 ms per cycle, and alerts fired, over the frames (first one warms up)."""
    rules = index_rules(make_rules(n_rules, random.Random(n_rules)))
    statuses = StatusBook()
    previous = None
    times = []
    alerts = 0
    for i, frame in enumerate(frames):
        assert frame.received_at is not None
        t0 = time.perf_counter()
        result = run_rules(rules, statuses, previous, frame, now=frame.received_at)
        statuses.apply(result.statuses)
        elapsed = time.perf_counter() - t0
        if i > 0:
            times.append(elapsed)
            alerts += len(result.alerts)
        previous = frame
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return statistics.median(times) * 1000, p99 * 1000, alerts


def main(cycles: int) -> None:
    print(f"{len(NAMES)} symbols, {cycles} cycles per row, evaluate + decide per cycle")
    for market, config in MARKETS.items():
        frames = snapshots(cycles + 1, config)
        print(f"\nmarket: {market}")
        print(f"{'rules':>7}{'median ms':>11}{'p99 ms':>9}{'us/pair':>9}{'alerts/cycle':>14}")
        for n in (100, 1_000, 10_000):
            median, p99, alerts = bench(n, frames)
            per_pair = median * 1000 / (n * len(NAMES))
            rate = alerts / cycles
            print(f"{n:>7}{median:>11.2f}{p99:>9.2f}{per_pair:>9.3f}{rate:>14.1f}")


if __name__ == "__main__":
    with profile_if_asked():
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--cycles", type=int, default=60)
        main(parser.parse_args().cycles)
