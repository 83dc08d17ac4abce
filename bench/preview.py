"""The personal-alert preview: `alert …` answered with 7 days of 30 s history for 4 symbols.

Seeds the store with 20,160 snapshots per symbol (7 days at 30 s, a random walk around a few
levels), then times the creation reply's preview (load the symbol's history, replay the alert
with the column replay) for a mix of alerts: the first per symbol loads the history, later
ones reuse it for a minute. Prints p50/p99 of both, over SQLite.

    .venv/bin/python bench/preview.py [--alerts 40]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from bench.profiling import profile_if_asked
from gexbot.chat.preview import AlertPreview
from gexbot.core.personal.grammar import PersonalAlert, parse_alert
from gexbot.store.engine import make_engine, migrate
from gexbot.store.tables import snapshot_history

SPOT = {"BTCUSDT": 95000.0, "ETHUSDT": 3400.0, "SOLUSDT": 180.0, "HYPEUSDT": 40.0}
STEPS = 7 * 86400 // 30
TYPED = ["crosses hvl", "near cr 0.5%", "crosses ps down for 5m", "outside em", "below 0.97x"]


def seed(engine: Any, now: datetime, rng: random.Random) -> None:
    with engine.begin() as conn:
        for symbol, start in SPOT.items():
            spot, rows = start, []
            for i in range(STEPS):
                spot *= 1 + rng.gauss(0, 0.0008) - 0.01 * (spot / start - 1)
                levels = {
                    "hvl": start * 0.995,
                    "call_resistance": start * 1.03,
                    "put_support": start * 0.97,
                    "expected_move.upper_1sd": start * 1.025,
                    "expected_move.lower_1sd": start * 0.975,
                }
                rows.append(
                    {
                        "symbol": symbol,
                        "computed_at": now - timedelta(seconds=30 * (STEPS - i)),
                        "spot": spot,
                        "data": {"levels": levels, "max_pain_value": None, "positioning": None},
                    }
                )
            conn.execute(insert(snapshot_history), rows)


async def main(n: int) -> None:
    now = datetime.now(UTC)
    rng = random.Random(3)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'preview.db'}")
        migrate(engine)
        seed(engine, now, rng)
        preview = AlertPreview(engine, None, clock=lambda: now, monotonic=time.monotonic)
        cold: list[float] = []
        warm: list[float] = []
        for i in range(n):
            symbol = list(SPOT)[i % len(SPOT)]
            words = rng.choice(TYPED).replace("0.97x", f"{SPOT[symbol] * 0.97:g}")
            request = parse_alert(f"{symbol} {words}")
            rule = PersonalAlert(i + 1, "telegram", "1", "1", request, now).rule()
            t0 = time.perf_counter()
            text = await preview(rule)
            (cold if i < len(SPOT) else warm).append((time.perf_counter() - t0) * 1000)
            if i < 2:
                print(f"  {request.canonical()}: {text}")
        engine.dispose()
    warm.sort()
    print(f"{STEPS:,} snapshots per symbol x {len(SPOT)} symbols in the store")
    print(
        f"first preview per symbol (loads 7 days): median {statistics.median(cold):.0f} ms, "
        f"max {max(cold):.0f} ms"
    )
    print(
        f"later previews ({len(warm)}): p50 {statistics.median(warm):.0f} ms, "
        f"p99 {warm[min(len(warm) - 1, int(len(warm) * 0.99))]:.0f} ms"
    )


if __name__ == "__main__":
    with profile_if_asked():
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--alerts", type=int, default=40)
        asyncio.run(main(parser.parse_args().alerts))
