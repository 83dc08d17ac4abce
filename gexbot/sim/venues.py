"""The venues' public option-chain endpoints, simulated from the chain behind the BackQuant
payloads: Deribit (JSON-RPC), Bybit v5 and OKX v5, each in its own names, units and envelope.

Each venue holds a fixed share of every contract's open interest, so the three summed give the
simulator's chain back and its `std` levels exactly. The simulator lists options for BTC and
ETH on all three venues and SOL on Deribit (linear, USDC) and Bybit; none lists HYPE.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gexbot.core.chains.venues import MONTH_NAMES
from gexbot.sim.chain import ListedOption

#: Each venue's share of every contract's open interest, per coin it lists.
SHARES: Mapping[str, Mapping[str, float]] = {
    "BTC": {"deribit": 0.7, "bybit": 0.2, "okx": 0.1},
    "ETH": {"deribit": 0.7, "bybit": 0.2, "okx": 0.1},
    "SOL": {"deribit": 0.75, "bybit": 0.25},
}
#: Deribit's USDC options: coin per contract (its inverse BTC and ETH options are 1 coin).
DERIBIT_LINEAR = {"SOL": 10.0}
OKX_CONTRACT = {"BTC": 0.01, "ETH": 0.1}


def _dmy(expiry: datetime) -> str:
    return f"{expiry.day}{MONTH_NAMES[expiry.month - 1]}{expiry:%y}"


def _strike(value: float, *, decimal: str = ".") -> str:
    return str(int(value)) if value == int(value) else repr(value).replace(".", decimal)


def deribit_book(coin: str, options: list[ListedOption], spot: float, now: float) -> Any:
    """`public/get_book_summary_by_currency?currency=…&kind=option`."""
    share = SHARES.get(coin, {}).get("deribit")
    if share is None:
        # Deribit answers an unknown currency with JSON-RPC's invalid-params error (assumed:
        # its docs give the code, not this case).
        return {"jsonrpc": "2.0", "error": {"code": -32602, "message": "Invalid params"}}
    linear = DERIBIT_LINEAR.get(coin)
    prefix = f"{coin}_USDC" if linear else coin
    rows = [
        {
            "instrument_name": f"{prefix}-{_dmy(o.expiry)}-{_strike(o.strike, decimal='d')}-"
            f"{_cp(o)}",
            "open_interest": o.oi * share / (linear or 1.0),
            "mark_iv": o.iv * 100.0,
            "underlying_price": spot,
            "underlying_index": f"{coin}-{_dmy(o.expiry)}",
            "base_currency": coin,
            "quote_currency": "USDC" if linear else coin,
            "creation_timestamp": int(now * 1000),
        }
        for o in options
    ]
    return {"jsonrpc": "2.0", "result": rows, "usIn": int(now * 1e6), "testnet": False}


def deribit_index(coin: str, spot: float) -> Any:
    """`public/get_index_price?index_name=btc_usd`."""
    if coin not in SHARES:
        return {"jsonrpc": "2.0", "error": {"code": -32602, "message": "Invalid params"}}
    return {"jsonrpc": "2.0", "result": {"index_price": spot, "estimated_delivery_price": spot}}


def bybit_tickers(coin: str, options: list[ListedOption], spot: float, now: float) -> Any:
    """`/v5/market/tickers?category=option&baseCoin=…` (numbers as strings, IV decimal)."""
    share = SHARES.get(coin, {}).get("bybit")
    rows = (
        []
        if share is None
        else [
            {
                "symbol": f"{coin}-{_dmy(o.expiry)}-{_strike(o.strike)}-{_cp(o)}",
                "openInterest": repr(o.oi * share),
                "markIv": repr(o.iv),
                "underlyingPrice": f"{spot}",
                "indexPrice": f"{spot}",
            }
            for o in options
        ]
    )
    return {
        "retCode": 0,
        "retMsg": "SUCCESS",
        "result": {"category": "option", "list": rows},
        "time": int(now * 1000),
    }


def okx_summary(coin: str, options: list[ListedOption], spot: float, now: float) -> Any:
    """`/api/v5/public/opt-summary?instFamily=…-USD`."""
    if "okx" not in SHARES.get(coin, {}):
        return {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
    return {
        "code": "0",
        "msg": "",
        "data": [
            {
                "instType": "OPTION",
                "instId": _okx_id(coin, o),
                "uly": f"{coin}-USD",
                "markVol": repr(o.iv),
                "fwdPx": repr(spot),
                "ts": str(int(now * 1000)),
            }
            for o in options
        ],
    }


def okx_open_interest(coin: str, options: list[ListedOption]) -> Any:
    """`/api/v5/public/open-interest?instType=OPTION&instFamily=…-USD`."""
    share = SHARES.get(coin, {}).get("okx")
    if share is None:
        return {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
    size = OKX_CONTRACT.get(coin, 1.0)
    return {
        "code": "0",
        "msg": "",
        "data": [
            {
                "instType": "OPTION",
                "instId": _okx_id(coin, o),
                "oi": repr(o.oi * share / size),
                "oiCcy": repr(o.oi * share),
            }
            for o in options
        ],
    }


def okx_index(coin: str, spot: float) -> Any:
    """`/api/v5/market/index-tickers?instId=…-USD`."""
    return {"code": "0", "msg": "", "data": [{"instId": f"{coin}-USD", "idxPx": f"{spot}"}]}


def _cp(o: ListedOption) -> str:
    return "C" if o.is_call else "P"


def _okx_id(coin: str, o: ListedOption) -> str:
    return f"{coin}-USD-{o.expiry:%y%m%d}-{_strike(o.strike)}-{_cp(o)}"
