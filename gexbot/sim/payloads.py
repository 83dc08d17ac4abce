"""JSON bodies in BackQuant's v2 shapes, built from the simulator's state.

Choices where the docs are silent are marked "assumed" with the most likely reading.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gexbot.sim.chain import SPECS, Levels
from gexbot.sim.market import Simulator

VENUES = ("deribit", "bybit", "okx", "binance", "derive", "thalex", "delta_india", "delta")
#: Flow positioning needs an aggressor tape, which BackQuant has for BTC and ETH only (§6).
FLOW_SYMBOLS = frozenset({"BTCUSDT", "ETHUSDT"})
CANDLE_SECONDS = 1800  # assumed: the terminal's default 30m candles (backquant-v2.md §4.3)
CANDLE_COUNT = 48


def iso(epoch: float, *, millis: bool) -> str:
    """ISO 8601 UTC with `Z`; entries carry no millis and meta does, as in the examples."""
    dt = datetime.fromtimestamp(epoch, tz=UTC)
    if millis:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(sim: Simulator, **fields: Any) -> dict[str, Any]:
    """The `meta` block: version, timestamp and request id, plus endpoint fields."""
    out: dict[str, Any] = {
        "version": sim.api_version,
        "timestamp": iso(sim.now(), millis=True),
        "request_id": sim.request_id(),
    }
    out.update({k: v for k, v in fields.items() if v is not None})
    return out


def error_body(sim: Simulator, code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The v2 error envelope."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"success": False, "error": error, "meta": meta(sim)}


def _price(value: float | None, symbol: str) -> float | None:
    if value is None:
        return None
    tick = SPECS[symbol].tick
    return round(value, max(2, len(f"{tick:f}".rstrip("0").split(".")[1])))


def _ranked(rows: tuple[tuple[float, float], ...], scale: float) -> list[dict[str, Any]]:
    return [
        {"rank": i, "strike": k, "gex": round(g * scale, 2), "abs_gex": round(abs(g) * scale, 2)}
        for i, (k, g) in enumerate(rows, start=1)
    ]


def entry(
    sim: Simulator,
    symbol: str,
    includes: set[str],
    *,
    positioning: str,
    scale: float,
) -> dict[str, Any]:
    """One symbol's levels: a multi entry (also the core of the single endpoint's `data`)."""
    lv: Levels = sim.levels(symbol)
    effective = positioning if symbol in FLOW_SYMBOLS else "std"
    cw = lv.call_walls
    flow = effective == "flow"
    out: dict[str, Any] = {
        "all_expiry": {
            "hvl": lv.hvl,
            "call_resistance": cw[0],
            # Secondary call walls exist only on the std cache path (backquant-v2.md §4.2).
            "call_wall_2": None if flow else cw[1],
            "call_wall_3": None if flow else cw[2],
            # Assumed (open question 9): put walls 2/3 stay populated under flow.
            "put_support": lv.put_walls[0],
            "put_wall_2": lv.put_walls[1],
            "put_wall_3": lv.put_walls[2],
        },
        "odte": {"hvl": lv.odte_hvl, "call_resistance": lv.odte_call, "put_support": lv.odte_put},
        "spot_price": _price(lv.spot, symbol),
        "computed_at": iso(sim.computed_at(symbol), millis=False),
        # Per-entry positioning: in the prose, not the schema (open question 5); served.
        "positioning": effective,
    }
    # Not-requested includes are omitted, not null (open question 3: the examples omit them).
    if "ranked" in includes:
        out["ranked"] = {
            "all_expiry_top_10": _ranked(lv.ranked_all, scale),
            "odte_top_10": _ranked(lv.ranked_odte, scale),
        }
    if "max_pain" in includes:
        strike, value = lv.max_pain
        out["max_pain"] = {"strike": strike, "value": None if value is None else round(value, 2)}
    if "expected_move" in includes:
        u1, l1, u2, l2 = lv.expected_move
        out["expected_move"] = {
            "upper_1sd": _price(u1, symbol),
            "lower_1sd": _price(l1, symbol),
            "upper_2sd": _price(u2, symbol),
            "lower_2sd": _price(l2, symbol),
        }
    if "zones" in includes:
        # Zone items are undocumented (open question 1); this is the layout the docs' fake uses.
        out["gamma_flip_zones"] = [
            {"lower_strike": lo, "upper_strike": hi, "flip_strike": flip, "direction": d}
            for lo, hi, flip, d in lv.zones
        ]
    return out


def candles(sim: Simulator, symbol: str) -> list[dict[str, Any]]:
    """The last 48 half-hour candles of the simulated price path."""
    now = sim.now()
    start = (now // CANDLE_SECONDS - CANDLE_COUNT + 1) * CANDLE_SECONDS
    buckets: dict[int, list[float]] = {}
    for t, price in sim.recent_prices(symbol):
        if t >= start:
            buckets.setdefault(int(t // CANDLE_SECONDS), []).append(price)
    out = []
    for key in sorted(buckets):
        prices = buckets[key]
        out.append(
            {
                "datetime": iso(key * CANDLE_SECONDS, millis=False),
                "open": prices[0],
                "high": max(prices),
                "low": min(prices),
                "close": prices[-1],
                "volume": round(len(prices) * SPECS[symbol].oi * 0.0004, 2),
            }
        )
    return out


def stress_history(sim: Simulator, symbol: str, days: int) -> dict[str, Any]:
    """Parallel arrays, oldest first (backquant-v2.md §8.5); timestamps assumed ISO strings."""
    cutoff = sim.now() - days * 86400.0
    rows = [row for row in sim.past(symbol) if row[0] >= cutoff]
    return {
        "symbol": symbol,
        "days": days,
        "positioning": "std",
        "timestamps": [iso(t, millis=False) for t, _, _ in rows],
        "spot_price": [spot for _, spot, _ in rows],
        "hvl": [lv.hvl for _, _, lv in rows],
        "call_wall": [lv.call_walls[0] for _, _, lv in rows],
        "put_wall": [lv.put_walls[0] for _, _, lv in rows],
        "net_gex": [round(lv.net_gex, 2) for _, _, lv in rows],
    }


def status(sim: Simulator) -> dict[str, Any]:
    """The `/v2/status` grid: per symbol and category, state from cache age."""
    thresholds = {
        "gex": {"healthy_max_seconds": 60, "degraded_max_seconds": 300},
        "options": {"healthy_max_seconds": 60, "degraded_max_seconds": 300},
        "chain": {"healthy_max_seconds": 120, "degraded_max_seconds": 600},
        "liquidation": {"healthy_max_seconds": 600, "degraded_max_seconds": 1800},
    }
    order = ["healthy", "degraded", "unhealthy", "unavailable"]
    worst = 0
    symbols: dict[str, Any] = {}
    for sym, st in sim.states.items():
        cells: dict[str, Any] = {}
        for cat, th in thresholds.items():
            if st.missing:
                cells[cat] = {"status": "unavailable", "freshness_seconds": None}
                worst = 3
                continue
            age = round(sim.now() - sim.computed_at(sym), 1)
            state = (
                0
                if age <= th["healthy_max_seconds"]
                else 1
                if age <= th["degraded_max_seconds"]
                else 2
            )
            worst = max(worst, state)
            cells[cat] = {"status": order[state], "freshness_seconds": age}
        symbols[sym] = cells
    return {
        "service": "BackQuant API v2 (gexbot simulator)",
        "version": sim.api_version,
        "current_time": iso(sim.now(), millis=True),
        "overall_status": order[worst],
        "symbols": symbols,
        "thresholds": thresholds,
    }
