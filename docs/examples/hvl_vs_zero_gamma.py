"""Draw docs/hvl-vs-zero-gamma.png: one chain's HVL and its zero gamma, and why they differ.

    .venv/bin/python docs/examples/hvl_vs_zero_gamma.py [CHAIN.json] [-o OUT.png]

CHAIN.json is a Deribit `get_book_summary_by_currency` answer (default: the recorded BTC chain
in ../shared/chains/, when this checkout sits beside it). The left panel is the cumulative net
GEX over strikes at today's spot (where it crosses zero is the HVL); the right one is the total
dollar gamma with every contract re-priced at other spots (where it crosses zero is zero gamma).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from gexbot.core.chains.contracts import merge
from gexbot.core.chains.levels import (
    SECONDS_PER_YEAR,
    T_FLOOR_SECONDS,
    ZERO_GAMMA_POINTS,
    ZERO_GAMMA_SPAN,
    black76_gamma,
    chain_levels,
)
from gexbot.core.chains.venues import parse_deribit
from gexbot.core.market.snapshot import Level

RECORDED = Path(__file__).resolve().parents[3] / "shared" / "chains" / "deribit-BTC-2026-03-13.json"


def main() -> None:
    """Parse the chain, compute both levels, draw both panels."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chain", nargs="?", type=Path, default=RECORDED)
    ap.add_argument("-o", "--output", type=Path, default=Path("docs/hvl-vs-zero-gamma.png"))
    args = ap.parse_args()
    data = json.loads(args.chain.read_text())
    now_s = max(r["creation_timestamp"] for r in data["result"]) / 1000
    spot = float(data["result"][0]["estimated_delivery_price"])
    c = merge([("deribit", parse_deribit(data, "BTC", now=now_s).contracts)], now=now_s)
    snap = chain_levels("BTCUSDT", c, spot=spot, now=datetime.fromtimestamp(now_s, tz=UTC)).snapshot
    hvl, zero = snap.level(Level.HVL), snap.level(Level.ZERO_GAMMA)

    t = np.maximum(c.expiry - now_s, T_FLOOR_SECONDS) / SECONDS_PER_YEAR
    sign = np.where(c.is_call, 1.0, -1.0)
    dollar = black76_gamma(c.forward, c.strike, c.iv, t) * c.oi * sign * spot * spot * 0.01
    strikes, where = np.unique(c.strike, return_inverse=True)
    per_strike = np.bincount(where, weights=dollar)
    grid = spot * np.linspace(1 - ZERO_GAMMA_SPAN, 1 + ZERO_GAMMA_SPAN, ZERO_GAMMA_POINTS)
    gamma = black76_gamma(
        c.forward[None, :] * (grid[:, None] / spot), c.strike[None, :], c.iv[None, :], t[None, :]
    )
    total = (gamma * (c.oi * sign)[None, :]).sum(axis=1) * grid * grid * 0.01

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    near = (strikes > 0.6 * spot) & (strikes < 1.4 * spot)
    left.plot(strikes[near], np.cumsum(per_strike)[near] / 1e6, color="#6a3d9a")
    left.axhline(0, color="#999", lw=0.8)
    left.axvline(spot, color="#333", ls=":", label=f"spot {spot:,.0f}")
    if hvl is not None:
        left.axvline(hvl, color="#6a3d9a", lw=2, label=f"HVL {hvl:,.0f}")
    left.set_title("HVL: net GEX cumulated over strikes, at today's spot")
    left.set_xlabel("strike")
    left.set_ylabel("cumulative net GEX (M USD per 1 %)")
    left.legend(loc="best", fontsize=8)
    right.plot(grid, total / 1e6, color="#1a9850")
    right.axhline(0, color="#999", lw=0.8)
    right.axvline(spot, color="#333", ls=":", label=f"spot {spot:,.0f}")
    if zero is not None:
        right.axvline(zero, color="#1a9850", lw=2, ls="-.", label=f"zero gamma {zero:,.0f}")
    right.set_title("Zero gamma: the whole chain re-priced at other spots")
    right.set_xlabel("spot the chain is re-priced at")
    right.set_ylabel("total net GEX (M USD per 1 %)")
    right.legend(loc="best", fontsize=8)
    at = datetime.fromtimestamp(now_s, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    fig.suptitle(f"Deribit BTC options, {at}: {len(c)} contracts", fontsize=11)
    fig.tight_layout()
    fig.savefig(args.output)
    print(f"{args.output}: HVL {hvl}, zero gamma {zero}, spot {spot}")


if __name__ == "__main__":
    main()
