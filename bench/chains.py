"""Levels from chains: parse three venues' answers for BTC, ETH and SOL and compute every level
(zero gamma on its 200-point grid included) per refresh, as the chain source does.

The answers are the simulator's venues' JSON, decoded afresh before each refresh (as httpx
hands a new answer over; the decoding is not timed), so the figure is parsing, summing across
venues and the level math, not the network. Prints the
median and p99 milliseconds per refresh, the contracts per refresh, and the process's peak RSS
after the first and after the last refresh (no growth over the run means nothing is kept).

    .venv/bin/python bench/chains.py [--refreshes 1000] [--coins BTC,ETH,SOL]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gexbot.core.chains.contracts import merge
from gexbot.core.chains.levels import chain_levels
from gexbot.core.chains.venues import parse_bybit, parse_deribit, parse_okx
from gexbot.sim import venues
from gexbot.sim.market import Simulator

COINS = ("BTC", "ETH", "SOL")


def answers(sim: Simulator, coins: tuple[str, ...] = COINS) -> str:
    """Each coin's venue answers as one JSON text (what the venues send)."""
    out: dict[str, dict[str, Any]] = {}
    for coin in coins:
        options, spot, at = sim.listed(f"{coin}USDT")
        raw = {
            "deribit": venues.deribit_book(coin, options, spot, at),
            "bybit": venues.bybit_tickers(coin, options, spot, at),
            "okx": venues.okx_summary(coin, options, spot, at),
            "okx_oi": venues.okx_open_interest(coin, options),
            "spot": spot,
            "at": at,
        }
        out[coin] = raw
    return json.dumps(out)


def refresh(data: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """One refresh of every coin: parse, merge, compute. Returns the venues' rows read and
    the contracts they merge into."""
    seen = merged = 0
    for coin, raw in data.items():
        at = raw["at"]
        books = [
            parse_deribit(raw["deribit"], coin, now=at),
            parse_bybit(raw["bybit"], coin, now=at),
        ]
        if raw["okx"]["code"] == "0":
            books.append(parse_okx(raw["okx"], raw["okx_oi"], coin, now=at))
        contracts = merge([(b.venue.value, b.contracts) for b in books], now=at)
        seen += sum(len(b.contracts) for b in books)
        merged += len(contracts)
        chain_levels(
            f"{coin}USDT", contracts, spot=raw["spot"], now=datetime.fromtimestamp(at, UTC)
        )
    return seen, merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refreshes", type=int, default=1000)
    parser.add_argument("--coins", default=",".join(COINS), help="default: BTC,ETH,SOL")
    args = parser.parse_args()
    coins = tuple(c.strip().upper() for c in args.coins.split(",") if c.strip())
    text = answers(Simulator(clock=lambda: 1_795_000_000.0), coins)
    rows, contracts = refresh(json.loads(text))  # warm-up (numpy's first calls)
    rss_first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    for _ in range(args.refreshes):
        data = json.loads(text)  # new objects, as every answer is
        t0 = time.perf_counter()
        refresh(data)
        times.append((time.perf_counter() - t0) * 1000)
    rss_last = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times.sort()
    print(
        f"per refresh (3 venues, {', '.join(coins)}): {rows} rows read, "
        f"{contracts} contracts once merged"
    )
    print(
        f"per refresh: median {statistics.median(times):.1f} ms, "
        f"p99 {times[int(0.99 * (len(times) - 1))]:.1f} ms over {args.refreshes} "
        "(target: median ≤ 25 ms for ~3,000 contracts)"
    )
    print(f"peak RSS: {rss_first:.0f} MB after the first refresh, {rss_last:.0f} MB after the last")


if __name__ == "__main__":
    main()
