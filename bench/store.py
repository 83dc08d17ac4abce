"""Store cost per cycle: 10,000 alert states, about 1% of them changing each cycle.

1,250 `above` rules x 8 symbols, thresholds spread over the price range; spot steps so that
about 1% of the pairs change side per cycle. Each cycle runs the full pipeline (evaluate,
decide, save changed statuses, save the snapshot, enqueue alerts) in one transaction. Prints
statements (including the two reads of mutes and subscriptions, and on PostgreSQL the lease
fence) and milliseconds per cycle on SQLite and on PostgreSQL (skipped if unreachable).

    .venv/bin/python bench/store.py [--cycles N] [--pg URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, event

from bench.profiling import profile_if_asked
from gexbot.core.alerts.evaluate import index_rules
from gexbot.core.language.model import Condition, ConditionKind, Rule
from gexbot.core.market.snapshot import BundleSnapshot, SymbolSnapshot, SymbolStatus
from gexbot.loops.cycle import Pipeline
from gexbot.loops.leadership import LeaseElector
from gexbot.store.engine import DatabaseError, make_engine, migrate
from tests.databases import pg_schema

SYMBOLS = [f"S{i}USDT" for i in range(8)]
RULES = 1_250
LOW, HIGH = 90.0, 110.0
STEP = (HIGH - LOW) * 0.01  # moves ~1% of thresholds across spot each cycle


def rules() -> list[Rule]:
    return [
        Rule(
            id=f"r{i}",
            condition=Condition(ConditionKind.ABOVE, threshold=LOW + (HIGH - LOW) * i / RULES),
            symbols=None,
            notify=("desk",),
        )
        for i in range(RULES)
    ]


def frame(spots: dict[str, float], at: datetime) -> BundleSnapshot:
    snaps = {
        s: SymbolSnapshot(symbol=s, status=SymbolStatus.OK, spot=p, computed_at=at)
        for s, p in spots.items()
    }
    return BundleSnapshot(received_at=at, symbols=MappingProxyType(snaps))


def run(engine: Engine, cycles: int) -> tuple[float, float, float, float]:
    migrate(engine)
    fence = None
    if engine.dialect.name == "postgresql":  # as a replica runs it: fenced by its lease
        elector = LeaseElector(engine, instance="bench", ttl=3600, monotonic=time.monotonic)
        elector._tick()
        fence = elector.fence
    pipeline = Pipeline(engine, index_rules(rules()), fence=fence)
    rng = random.Random(7)
    spots = {s: rng.uniform(95, 105) for s in SYMBOLS}
    now = datetime(2026, 11, 24, tzinfo=UTC)
    pipeline.run(frame(spots, now), now=now)  # first sight: 10,000 baselines
    statements = 0

    def count(*_a: Any) -> None:
        nonlocal statements
        statements += 1

    event.listen(engine, "before_cursor_execute", count)
    times, stmts, changes, alerts = [], [], [], []
    for _ in range(cycles):
        now += timedelta(seconds=30)
        for s in SYMBOLS:
            step = STEP if rng.random() < 0.5 else -STEP
            spots[s] = min(HIGH - 1, max(LOW + 1, spots[s] + step))
        statements = 0
        t0 = time.perf_counter()
        report = pipeline.run(frame(spots, now), now=now)
        times.append((time.perf_counter() - t0) * 1000)
        stmts.append(statements)
        changes.append(len(report.result.statuses))
        alerts.append(report.enqueued)
    event.remove(engine, "before_cursor_execute", count)
    return (
        statistics.median(times),
        statistics.median(stmts),
        statistics.mean(changes),
        statistics.mean(alerts),
    )


def main(cycles: int, pg_url: str) -> None:
    print(f"{RULES * len(SYMBOLS):,} alert states, {cycles} cycles, ~1% transitions per cycle")
    print(f"{'database':<12}{'median ms':>11}{'statements':>12}{'changed':>9}{'alerts':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        ms, st, ch, al = run(engine, cycles)
        engine.dispose()
        print(f"{'sqlite':<12}{ms:>11.1f}{st:>12.0f}{ch:>9.0f}{al:>8.0f}")
    try:
        with pg_schema(pg_url) as engine:
            ms, st, ch, al = run(engine, cycles)
    except DatabaseError as exc:
        print(f"{'postgresql':<12} skipped: {exc}")
        return
    print(f"{'postgresql':<12}{ms:>11.1f}{st:>12.0f}{ch:>9.0f}{al:>8.0f}")


if __name__ == "__main__":
    with profile_if_asked():
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--cycles", type=int, default=50)
        parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
        args = parser.parse_args()
        main(args.cycles, args.pg)
