"""One cycle with 100,000 (and 1,000,000) personal alerts over 4 symbols.

The mix a chat would make: most alerts cross or near a level (HVL, call resistance, put
support, 0DTE HVL; a few bands), a third above/below a fixed price within 5% of spot, a few
leave the expected move or watch a level move, 3% hold `for` 5 minutes, 10% have a cooldown.
Spot walks a small step each cycle (about 0.1–1% of the alerts change); levels stay put, as
they do between upstream refreshes. Each measured cycle is the pipeline as the leader runs it:
load what changed, pick candidates, evaluate, decide, save statuses and the snapshot, enqueue
the alerts, in one transaction. Prints median and p99 ms, the share of alerts changed per
cycle, the median of the cycles where 0.1–1% of the alerts changed (and how many there
were), the load time, and the RSS after the run and at its peak of the process that ran the
cycles (a fresh one, not the one that seeded the database), on SQLite and on PostgreSQL.

    .venv/bin/python bench/personal_alerts.py [--alerts 100000] [--cycles 60] [--steps 0.1,0.2,0.3]
        [--pg URL] [--sqlite-only] [--profile]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import random
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, insert

from bench.profiling import profile_if_asked
from gexbot.core.alerts.evaluate import index_rules
from gexbot.core.market.snapshot import BundleSnapshot, Level, SymbolSnapshot, SymbolStatus
from gexbot.core.personal.grammar import parse_alert
from gexbot.loops.cycle import Pipeline
from gexbot.store.engine import DatabaseError, make_engine, migrate
from gexbot.store.tables import personal_alerts, revisions
from tests.databases import pg_schema

SPOT = {"BTCUSDT": 95000.0, "ETHUSDT": 3400.0, "SOLUSDT": 180.0, "HYPEUSDT": 40.0}
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def levels(spot: float) -> dict[Level, float]:
    """Fixed levels around a symbol's starting spot (what one upstream refresh holds)."""
    return {
        Level.HVL: spot * 0.995,
        Level.CALL_RESISTANCE: spot * 1.03,
        Level.PUT_SUPPORT: spot * 0.97,
        Level.ODTE_HVL: spot * 1.002,
        Level.MAX_PAIN: spot * 0.99,
        Level.EM_UPPER_1SD: spot * 1.025,
        Level.EM_LOWER_1SD: spot * 0.975,
        Level.EM_UPPER_2SD: spot * 1.05,
        Level.EM_LOWER_2SD: spot * 0.95,
    }


def typed(rng: random.Random, symbol: str) -> str:
    """One alert as a trader would type it."""
    short = symbol.removesuffix("USDT").lower()
    roll = rng.random()
    if roll < 0.35:
        level = rng.choice(["hvl", "cr", "ps", "0dte.hvl"])
        way = rng.choice(["", "", " up", " down"])
        band = rng.choice(["", "", " band 0.2%", " band 0.5%"])
        text = f"{short} crosses {level}{way}{band}"
    elif roll < 0.60:
        level = rng.choice(["hvl", "cr", "ps", "mp"])
        text = f"{short} near {level} {rng.choice(['0.25', '0.5', '1'])}%"
    elif roll < 0.92:
        price = SPOT[symbol] * rng.uniform(0.95, 1.05)
        tick = 10 ** max(0, len(str(int(SPOT[symbol]))) - 4)
        text = f"{short} {rng.choice(['above', 'below'])} {round(price / tick) * tick:g}"
    elif roll < 0.97:
        text = f"{short} outside {rng.choice(['em', 'em2'])}"
    else:
        text = f"{short} moved {rng.choice(['hvl', 'cr'])} {rng.choice(['0.5', '1'])}%"
    if rng.random() < 0.03:
        text += " for 5m"
    if rng.random() < 0.10:
        text += " cooldown 1h"
    return text


def seed_alerts(engine: Engine, n: int, rng: random.Random) -> None:
    """n alerts, in bulk (as if made over months in a thousand chats), 20,000 at a time."""
    with engine.begin() as conn:
        for start in range(0, n, 20_000):
            conn.execute(insert(personal_alerts), _rows(rng, start, min(n, start + 20_000)))
        conn.execute(insert(revisions).values(name="personal_alerts", value=1))


def _rows(rng: random.Random, start: int, end: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    parsed: dict[str, Any] = {}
    for i in range(start, end):
        symbol = rng.choice(list(SPOT))
        text = typed(rng, symbol)
        req = parsed.get(text) or parsed.setdefault(text, parse_alert(text))
        rows.append(
            {
                "platform": "telegram" if i % 3 else "slack",
                "chat_id": str(1000 + i % 4000),
                "owner": str(i % 4000),
                "symbol": req.symbol,
                "condition": req.condition_text(),
                "options": {"for": req.hold, "cooldown": req.cooldown, "once": False},
                "created_at": T0,
                "revision": 1,
            }
        )
    return rows


def frame(spots: dict[str, float], at: datetime) -> BundleSnapshot:
    snaps = {
        s: SymbolSnapshot(
            symbol=s,
            status=SymbolStatus.OK,
            spot=p,
            computed_at=at,
            levels=MappingProxyType(levels(SPOT[s])),
        )
        for s, p in spots.items()
    }
    return BundleSnapshot(received_at=at, symbols=MappingProxyType(snaps))


def run(engine: Engine, n: int, cycles: int, step: float) -> dict[str, float]:
    """Seed `n` alerts here, then measure the leader's cycles in a fresh process, so the peak
    memory reported is the bot's own and not the seeding's."""
    migrate(engine)
    t0 = time.perf_counter()
    seed_alerts(engine, n, random.Random(20261203))
    seeded = time.perf_counter() - t0
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        return {**child.submit(measure, url, n, cycles, step).result(), "seed": seeded}


def measure(url: str, n: int, cycles: int, step: float) -> dict[str, float]:
    """The first load, then `cycles` cycles of the leader's pipeline on the seeded database."""
    engine = make_engine(url)
    rng = random.Random(step)
    pipeline = Pipeline(engine, index_rules([]))
    spots = dict(SPOT)
    now = T0
    t0 = time.perf_counter()
    pipeline.run(frame(spots, now), now=now)  # load everything; first sight: baselines
    loaded = time.perf_counter() - t0
    times, changed = [], []
    for _ in range(cycles):
        now += timedelta(seconds=30)
        for s, spot in spots.items():  # a random step (σ `step`), mean-reverting to the start
            spots[s] = spot * (1 + rng.gauss(0, step) - 0.05 * (spot / SPOT[s] - 1))
        t0 = time.perf_counter()
        report = pipeline.run(frame(spots, now), now=now)
        times.append((time.perf_counter() - t0) * 1000)
        changed.append(len(report.result.statuses))
    # The issue's band: cycles where 0.1–1% of the alerts changed.
    band = [ms for ms, c in zip(times, changed, strict=True) if n / 1000 <= c <= n / 100]
    times.sort()
    gc.collect()
    engine.dispose()
    return {
        "band": statistics.median(band) if band else float("nan"),
        "band_n": len(band),
        "rss": _rss_mb(),
        "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "median": statistics.median(times),
        "p99": times[min(len(times) - 1, int(len(times) * 0.99))],
        "changed": statistics.median(changed) / n * 100,
        "changed_max": max(changed) / n * 100,
        "load": loaded,
    }


def _rss_mb() -> float:
    """The process's resident memory now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _print(name: str, n: int, step: float, r: dict[str, float]) -> None:
    peak = r["peak"]
    print(
        f"{name:<11}{n:>10,}{step * 100:>6.2f}%{r['median']:>10.1f}{r['p99']:>9.1f}"
        f"{r['band']:>10.1f}{int(r['band_n']):>5}"
        f"{r['changed']:>9.2f}%{r['changed_max']:>8.2f}%{r['load']:>9.1f}s"
        f"{r['rss']:>8.0f} MB{peak:>8.0f} MB",
        flush=True,
    )


def main(n: int, cycles: int, steps: list[float], pg_url: str, sqlite_only: bool) -> None:
    print(f"{n:,} personal alerts over 4 symbols, {cycles} cycles; step = σ of spot's move")
    print(
        f"{'database':<11}{'alerts':>10}{'step':>7}{'median ms':>10}{'p99 ms':>9}"
        f"{'0.1–1% ms':>10}{'of':>5}{'changed':>10}"
        f"{'max':>9}{'load':>10}{'RSS':>11}{'peak':>11}"
    )
    for step in steps:
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
            _print("sqlite", n, step, run(engine, n, cycles, step))
            engine.dispose()
    if sqlite_only:
        return
    for step in steps:
        try:
            with pg_schema(pg_url) as engine:
                _print("postgresql", n, step, run(engine, n, cycles, step))
        except DatabaseError as exc:
            print(f"{'postgresql':<11} skipped: {exc}")
            return


if __name__ == "__main__":
    with profile_if_asked():
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--alerts", type=int, default=100_000)
        parser.add_argument("--cycles", type=int, default=60)
        parser.add_argument(
            "--steps",
            default="0.1,0.2,0.3",
            help="σ of spot's move per cycle, in %%, comma-separated",
        )
        parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
        parser.add_argument("--sqlite-only", action="store_true")
        args = parser.parse_args()
        main(
            args.alerts,
            args.cycles,
            [float(x) / 100 for x in args.steps.split(",")],
            args.pg,
            args.sqlite_only,
        )
