"""Each venue's public option chain, read into contracts in common units (coin, decimal IV, USD).

A row that cannot be read (an unknown name, a number that is not one, a negative interest, an
expiry in the past) is left out and counted; only an answer that is not a chain at all raises,
and then only `ChainError`. Every expiry settles at 08:00 UTC on these venues.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from gexbot.core.chains.contracts import ChainError, Contract

#: How Deribit and Bybit spell a month in an option's name (`27DEC26`).
MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
MONTHS = {m: i + 1 for i, m in enumerate(MONTH_NAMES)}


def coin_of(symbol: str) -> str:
    """`BTCUSDT` → `BTC`: the venues name the underlying by its coin."""
    return symbol.removesuffix("USDT")


#: Beyond this a number is not a price, an interest or a vol any venue would publish.
_SANE = 1e12


class Venue(StrEnum):
    """The venues whose chains gexbot reads, by their setting names."""

    DERIBIT = "deribit"
    BYBIT = "bybit"
    OKX = "okx"

    @property
    def display(self) -> str:
        """The venue as an alert names it."""
        return {"deribit": "Deribit", "bybit": "Bybit", "okx": "OKX"}[self.value]


@dataclass(frozen=True, slots=True)
class Book:
    """One venue's chain for one underlying: what was read, and how many rows were not."""

    venue: Venue
    underlying: str
    contracts: tuple[Contract, ...]
    skipped: int = 0
    at: float | None = None  # the venue's own time for the data, epoch seconds


@dataclass(frozen=True, slots=True)
class _Name:
    underlying: str
    expiry: float
    strike: float
    is_call: bool


_DERIBIT = re.compile(r"([A-Z]+)(?:_USDC)?-(\d{1,2})([A-Z]{3})(\d{2})-(\d+(?:d\d+)?)-([CP])")
_BYBIT = re.compile(r"([A-Z]+)-(\d{1,2})([A-Z]{3})(\d{2})-(\d+(?:\.\d+)?)-([CP])(?:-USDT)?")
_OKX = re.compile(r"([A-Z]+)-USD-(\d{2})(\d{2})(\d{2})-(\d+(?:\.\d+)?)-([CP])")
#: Deribit's linear (USDC) options: coin per contract (the inverse BTC and ETH ones are 1).
DERIBIT_LINEAR_MULTIPLIER = {"SOL": 10.0, "XRP": 1000.0}
#: OKX: coin per contract (its `oiCcy` is already in coin; this reads `oi` when it is absent).
OKX_MULTIPLIER = {"BTC": 0.01, "ETH": 0.1}


def _settle(year: int, month: int, day: int) -> float | None:
    try:
        return datetime(year, month, day, 8, tzinfo=UTC).timestamp()
    except ValueError:  # 31FEB and the like
        return None


def _dmy(day: str, month: str, year: str) -> float | None:
    m = MONTHS.get(month)
    return None if m is None else _settle(2000 + int(year), m, int(day))


# The same few thousand names come back every refresh: each is read once (pure, so cached).
@functools.lru_cache(maxsize=65536)
def parse_deribit_name(name: str) -> _Name | None:
    """`BTC-27DEC24-100000-C`, `SOL_USDC-27DEC24-0d625-P` (the `d` is a decimal point)."""
    m = _DERIBIT.fullmatch(name)
    if m is None:
        return None
    expiry = _dmy(m[2], m[3], m[4])
    if expiry is None:
        return None
    return _Name(m[1], expiry, float(m[5].replace("d", ".")), m[6] == "C")


@functools.lru_cache(maxsize=65536)
def parse_bybit_name(name: str) -> _Name | None:
    """`BTC-27DEC24-100000-C`, newer series with a `-USDT` suffix."""
    m = _BYBIT.fullmatch(name)
    if m is None:
        return None
    expiry = _dmy(m[2], m[3], m[4])
    return None if expiry is None else _Name(m[1], expiry, float(m[5]), m[6] == "C")


@functools.lru_cache(maxsize=65536)
def parse_okx_name(name: str) -> _Name | None:
    """`BTC-USD-241227-100000-C` (YYMMDD)."""
    m = _OKX.fullmatch(name)
    if m is None:
        return None
    expiry = _settle(2000 + int(m[2]), int(m[3]), int(m[4]))
    return None if expiry is None else _Name(m[1], expiry, float(m[5]), m[6] == "C")


def _number(value: Any) -> float | None:
    """A finite, sane number from a JSON number or a numeric string; None otherwise (a bool is
    not a number here). Called for every field of every row: kept to type checks and one
    comparison, which also refuses NaN and the infinities."""
    kind = type(value)
    if kind is float or kind is int:
        number = float(value)
    elif kind is str:
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if -_SANE < number < _SANE else None


def _rows(payload: Any, *path: str) -> list[Any]:
    node = payload
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            raise ChainError(f"no `{'.'.join(path)}` in the answer")
        node = node[key]
    if not isinstance(node, list):
        raise ChainError(f"`{'.'.join(path)}` is not a list")
    return node


def _contract(
    name: _Name | None, *, oi: float | None, iv: float | None, forward: float | None, now: float
) -> Contract | None:
    if name is None or oi is None or iv is None or forward is None:
        return None
    if oi < 0 or iv <= 0 or iv > 20 or forward <= 0 or name.strike <= 0 or name.expiry <= now:
        return None
    return Contract(name.expiry, name.strike, name.is_call, oi, iv, forward)


def _book(venue: Venue, underlying: str, parsed: list[Contract | None], at: float | None) -> Book:
    # A duplicated instrument counts once: the first row wins, the others are skipped.
    seen: set[tuple[float, float, bool]] = set()
    kept = []
    for c in parsed:
        if c is not None and (key := (c.expiry, c.strike, c.is_call)) not in seen:
            seen.add(key)
            kept.append(c)
    return Book(venue, underlying, tuple(kept), skipped=len(parsed) - len(kept), at=at)


def _millis(value: Any) -> float | None:
    ms = _number(value)
    return ms / 1000.0 if ms is not None and ms > 0 else None


def parse_deribit(payload: Any, underlying: str, *, now: float) -> Book:
    """`public/get_book_summary_by_currency?kind=option` (JSON-RPC): `open_interest` in coin
    (contracts × the linear multiplier for USDC options), `mark_iv` in percent,
    `underlying_price` the expiry's forward."""
    if isinstance(payload, Mapping) and "error" in payload and payload.get("error"):
        raise ChainError(f"Deribit error {_brief(payload['error'])}")
    parsed: list[Contract | None] = []
    at: float | None = None
    for row in _rows(payload, "result"):
        if not isinstance(row, Mapping) or not isinstance(row.get("instrument_name"), str):
            parsed.append(None)
            continue
        stamp = _millis(row.get("creation_timestamp"))
        if stamp is not None:
            at = stamp if at is None else max(at, stamp)
        raw_name = row["instrument_name"]
        name = parse_deribit_name(raw_name)
        if name is not None and name.underlying != underlying:
            continue  # another currency's options in the same answer (USDC lists several)
        oi = _number(row.get("open_interest"))
        if oi is not None and "_USDC" in raw_name:
            oi *= DERIBIT_LINEAR_MULTIPLIER.get(underlying, 1.0)
        iv = _number(row.get("mark_iv"))
        parsed.append(
            _contract(
                name,
                oi=oi,
                iv=None if iv is None else iv / 100.0,
                forward=_number(row.get("underlying_price")),
                now=now,
            )
        )
    return _book(Venue.DERIBIT, underlying, parsed, at)


def parse_bybit(payload: Any, underlying: str, *, now: float) -> Book:
    """`/v5/market/tickers?category=option`: numbers as strings, `markIv` decimal,
    `openInterest` in coin, `underlyingPrice` the expiry's forward."""
    if isinstance(payload, Mapping) and payload.get("retCode") not in (0, None):
        raise ChainError(f"Bybit retCode {_brief(payload.get('retCode'))}")
    parsed: list[Contract | None] = []
    for row in _rows(payload, "result", "list"):
        if not isinstance(row, Mapping) or not isinstance(row.get("symbol"), str):
            parsed.append(None)
            continue
        name = parse_bybit_name(row["symbol"])
        if name is not None and name.underlying != underlying:
            continue
        parsed.append(
            _contract(
                name,
                oi=_number(row.get("openInterest")),
                iv=_number(row.get("markIv")),
                forward=_number(row.get("underlyingPrice")),
                now=now,
            )
        )
    return _book(
        Venue.BYBIT,
        underlying,
        parsed,
        _millis(payload.get("time")),
    )


def parse_okx(summary: Any, open_interest: Any, underlying: str, *, now: float) -> Book:
    """`/api/v5/public/opt-summary` (`markVol` decimal, `fwdPx`) joined with
    `/api/v5/public/open-interest` (`oiCcy` in coin) by `instId`."""
    for answer in (summary, open_interest):
        if isinstance(answer, Mapping) and str(answer.get("code", "0")) != "0":
            raise ChainError(f"OKX code {_brief(answer.get('code'))}")
    coins: dict[str, float | None] = {}
    for row in _rows(open_interest, "data"):
        if isinstance(row, Mapping) and isinstance(row.get("instId"), str):
            oi = _number(row.get("oiCcy"))
            if oi is None and (contracts := _number(row.get("oi"))) is not None:
                oi = contracts * OKX_MULTIPLIER.get(underlying, 1.0)
            coins.setdefault(row["instId"], oi)
    parsed: list[Contract | None] = []
    at: float | None = None
    for row in _rows(summary, "data"):
        if not isinstance(row, Mapping) or not isinstance(row.get("instId"), str):
            parsed.append(None)
            continue
        stamp = _millis(row.get("ts"))
        if stamp is not None:
            at = stamp if at is None else max(at, stamp)
        name = parse_okx_name(row["instId"])
        if name is not None and name.underlying != underlying:
            continue
        parsed.append(
            _contract(
                name,
                oi=coins.get(row["instId"]),
                iv=_number(row.get("markVol")),
                forward=_number(row.get("fwdPx")),
                now=now,
            )
        )
    return _book(Venue.OKX, underlying, parsed, at)


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"
