"""The web console under a desk's load: 4 symbols, 10,000 stored alert states, 1,000 outbox rows.

The console's routes on the health server over real HTTP (httpx on 127.0.0.1), on SQLite and
on PostgreSQL. Prints p50/p99 of `GET /` and of `GET /console/data.json` over --n requests
each, and how long a live update takes to reach an open page: from the end of a cycle (the
service's change signal) to the server-sent event arriving, over 50 updates. Goals: p99 ≤ 100
ms, updates within 1 s.

    .venv/bin/python bench/console.py [--n 300] [--pg URL] [--sqlite-only] [--profile]
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

import httpx
from sqlalchemy import Engine, insert

from bench.personal_alerts import SPOT, frame
from bench.profiling import profile_if_asked
from gexbot.core.market.snapshot import SymbolSnapshot
from gexbot.loops.health import HealthServer, Metrics
from gexbot.loops.waits import Changes
from gexbot.store.engine import DatabaseError, make_engine, migrate
from gexbot.store.tables import alert_state, outbox, personal_alerts, revisions
from gexbot.web.console import WebConsole
from tests.databases import pg_schema

T0 = datetime(2026, 12, 1, tzinfo=UTC)
TOKEN = "bench-token"  # noqa: S105 - a throwaway token for the local bench
STATES = 10_000
OUTBOX = 1_000


def seed(engine: Engine, rng: random.Random) -> None:
    """10,000 statuses (5% firing), 1,000 outbox rows (3% dead), 2,000 personal alerts."""
    migrate(engine)
    symbols = list(SPOT)
    with engine.begin() as conn:
        conn.execute(
            insert(alert_state),
            [
                {
                    "rule_id": f"#{i}" if i % 2 else f"rule-{i}",
                    "symbol": symbols[i % 4],
                    "state": "firing" if rng.random() < 0.05 else "inactive",
                    "since": T0 - timedelta(seconds=rng.randint(0, 86400)),
                    "baseline": 1.0,
                    "last_notified": T0,
                    "seq": 1,
                    "last_reason": "fired",
                }
                for i in range(STATES)
            ],
        )
        conn.execute(
            insert(outbox),
            [
                {
                    "alert_key": f"rule-{i}|{symbols[i % 4]}",
                    "seq": 1,
                    "channel": rng.choice(["desk", "ops", f"telegram:{i % 50}"]),
                    "payload": {
                        "rule_id": f"rule-{i}",
                        "symbol": symbols[i % 4],
                        "reason": "fired",
                    },
                    "state": "dead" if rng.random() < 0.03 else rng.choice(["sent", "pending"]),
                    "attempts": 1,
                    "due_at": T0,
                    "created_at": T0 + timedelta(seconds=i),
                    "last_error": "telegram: forbidden (bot blocked)",
                }
                for i in range(OUTBOX)
            ],
        )
        conn.execute(
            insert(personal_alerts),
            [
                {
                    "platform": "telegram",
                    "chat_id": str(i % 200),
                    "owner": "u",
                    "symbol": symbols[i % 4],
                    "condition": "crosses hvl band 0.1%",
                    "options": {"for": 0, "cooldown": 0, "once": False},
                    "created_at": T0,
                    "revision": 1,
                }
                for i in range(2_000)
            ],
        )
        conn.execute(insert(revisions).values(name="personal_alerts", value=1))


async def measure(engine: Engine, n: int) -> dict[str, Any]:
    latest = frame(dict(SPOT), T0)
    changes = Changes()

    async def chart(_snap: SymbolSnapshot) -> bytes:
        return b""

    console = WebConsole(
        engine=engine,
        latest=lambda: latest,
        role=lambda: {"role": "leader", "instance": "bench", "leader": "bench"},
        chart=chart,
        changes=changes,
        clock=lambda: T0,
        token=TOKEN,
    )
    server = HealthServer(Metrics(), lambda: (True, {}), routes=[console.add_routes])
    url = await server.start("127.0.0.1", 0)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        for name, path in (("page", "/"), ("data", "/console/data.json")):
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                resp = await http.get(url + path)
                times.append((time.perf_counter() - t0) * 1000)
                assert resp.status_code == 200, resp.status_code
            out[name] = times
        lags = []
        async with http.stream("GET", url + "/console/events") as stream:
            lines = stream.aiter_lines()
            await _next_event(lines)  # the first push, on connecting
            for _ in range(50):
                t0 = time.perf_counter()
                changes.bump()  # a cycle just committed
                await _next_event(lines)
                lags.append((time.perf_counter() - t0) * 1000)
        out["update"] = lags
    await server.stop()
    return out


async def _next_event(lines: Any) -> None:
    async for line in lines:
        if line.startswith("data: "):
            return


def _figures(times: list[float]) -> str:
    times = sorted(times)
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
    return f"p50 {statistics.median(times):6.1f} ms  p99 {p99:6.1f} ms"


def report(name: str, out: dict[str, Any]) -> None:
    print(
        f"{name:<11} GET / {_figures(out['page'])} · data.json {_figures(out['data'])} · "
        f"live update {_figures(out['update'])}",
        flush=True,
    )


def main(n: int, pg_url: str, sqlite_only: bool) -> None:
    print(f"{STATES:,} alert states, {OUTBOX:,} outbox rows, 4 symbols; {n} requests each")
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'console.db'}")
        seed(engine, random.Random(7))
        report("sqlite", asyncio.run(measure(engine, n)))
        engine.dispose()
    if sqlite_only:
        return
    try:
        with pg_schema(pg_url) as engine:
            seed(engine, random.Random(7))
            report("postgresql", asyncio.run(measure(engine, n)))
    except DatabaseError as exc:
        print(f"postgresql  skipped: {exc}")


if __name__ == "__main__":
    with profile_if_asked():
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--n", type=int, default=300)
        parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
        parser.add_argument("--sqlite-only", action="store_true")
        args = parser.parse_args()
        main(args.n, args.pg, args.sqlite_only)
