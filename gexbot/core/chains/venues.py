"""Each venue's public option chain, read into contracts in common units (coin, decimal IV, USD).

A row that cannot be read (an unknown name, a number that is not one, a negative interest, an
expiry in the past) is left out and counted; only an answer that is not a chain at all raises,
and then only `ChainError`. Every expiry settles at 08:00 UTC on these venues.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np

from gexbot.core.chains.contracts import Bools, ChainError, Contracts, Floats, first_of_each

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
    contracts: Contracts
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
    not a number here)."""
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


_PLAIN = frozenset({float, int, str, type(None)})


def _floats(values: list[Any]) -> Floats:
    """A column of numbers (JSON numbers or numeric strings) as floats, NaN where a value is
    not a sane number. numpy converts a column at C speed and reads strings as `float()`
    does; a column holding anything else (a bool, a container, an integer beyond float range)
    is read value by value instead."""
    if set(map(type, values)) <= _PLAIN:
        try:
            col = np.array(values, dtype=np.float64)
        except (ValueError, OverflowError):  # a word among the numbers; a 400-digit integer
            col = None
        if col is not None and col.ndim == 1:
            col[~(np.abs(col) < _SANE)] = np.nan  # NaN, the infinities and absurd sizes
            return col
    return np.array([np.nan if (n := _number(v)) is None else n for v in values], dtype=np.float64)


def _rows(payload: Any, *path: str) -> list[Any]:
    node = payload
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            raise ChainError(f"no `{'.'.join(path)}` in the answer")
        node = node[key]
    if not isinstance(node, list):
        raise ChainError(f"`{'.'.join(path)}` is not a list")
    return node


def _field(rows: list[Any], key: str) -> list[Any]:
    """One field of every row (None where absent, or where the row is not an object)."""
    try:
        return list(map(dict.get, rows, itertools.repeat(key)))  # C speed: every row a dict
    except TypeError:
        return [r.get(key) if type(r) is dict else None for r in rows]


@dataclass(frozen=True, slots=True)
class _NameColumns:
    """What a column of instrument names says, row by row (read-only arrays)."""

    mine: Bools  # an option on the underlying asked for, or unreadable (counted as skipped)
    has_name: Bools
    expiry: Floats
    strike: Floats
    is_call: Bools
    linear: Bools  # Deribit's USDC-settled options (`SOL_USDC-…`)


def _name_columns(
    raw: list[Any], parse: Callable[[str], _Name | None], underlying: str
) -> _NameColumns:
    try:
        return _cached_name_columns(tuple(raw), parse, underlying)
    except TypeError:  # a name that is not hashable (a list, an object): read it uncached
        return _read_name_columns(raw, parse, underlying)


# A venue lists the same instruments in the same order refresh after refresh: the whole
# column's reading is kept, so a refresh costs one tuple comparison instead of a pass per row.
@functools.lru_cache(maxsize=64)
def _cached_name_columns(
    raw: tuple[Any, ...], parse: Callable[[str], _Name | None], underlying: str
) -> _NameColumns:
    return _read_name_columns(raw, parse, underlying)


def _read_name_columns(
    raw: Sequence[Any], parse: Callable[[str], _Name | None], underlying: str
) -> _NameColumns:
    names = [parse(n) if type(n) is str else None for n in raw]
    named = [n for n in names if n is not None]
    has_name = np.array([n is not None for n in names], dtype=np.bool_)
    expiry = np.full(len(names), np.nan)
    strike = np.full(len(names), np.nan)
    is_call = np.zeros(len(names), dtype=np.bool_)
    if named:
        expiry[has_name] = [n.expiry for n in named]
        strike[has_name] = [n.strike for n in named]
        is_call[has_name] = [n.is_call for n in named]
    out = _NameColumns(
        mine=np.array([n is None or n.underlying == underlying for n in names], dtype=np.bool_),
        has_name=has_name,
        expiry=expiry,
        strike=strike,
        is_call=is_call,
        linear=np.array([type(n) is str and "_USDC" in n for n in raw], dtype=np.bool_),
    )
    for column in (out.mine, out.has_name, out.expiry, out.strike, out.is_call, out.linear):
        column.setflags(write=False)  # shared by every refresh that hits the cache
    return out


def _book(
    venue: Venue,
    underlying: str,
    names: _NameColumns,
    *,
    oi: Floats,
    iv: Floats,
    forward: Floats,
    now: float,
    at: float | None,
) -> Book:
    """The rows that are options on `underlying` (another's, listed in the same answer, are
    not counted), kept when every number is usable and the expiry is ahead; a duplicated
    instrument counts once, the first row winning. The others are counted as skipped."""
    mine, expiry, strike, is_call = names.mine, names.expiry, names.strike, names.is_call
    has_name = names.has_name
    with np.errstate(invalid="ignore"):
        usable = (
            mine
            & has_name
            & (oi >= 0)
            & (iv > 0)
            & (iv <= 20)
            & (forward > 0)
            & (strike > 0)
            & (expiry > now)
        )
    rows = np.flatnonzero(usable)
    first, _ = first_of_each(expiry[rows], strike[rows], is_call[rows])
    kept = rows[np.sort(first)]
    contracts = Contracts(
        expiry=expiry[kept],
        strike=strike[kept],
        is_call=is_call[kept],
        oi=oi[kept],
        iv=iv[kept],
        forward=forward[kept],
    )
    return Book(venue, underlying, contracts, skipped=int(mine.sum()) - len(kept), at=at)


def _latest_millis(values: list[Any]) -> float | None:
    stamps = _floats(values)
    stamps = stamps[stamps > 0]
    return float(stamps.max()) / 1000.0 if len(stamps) else None


def parse_deribit(payload: Any, underlying: str, *, now: float) -> Book:
    """`public/get_book_summary_by_currency?kind=option` (JSON-RPC): `open_interest` in coin
    (contracts × the linear multiplier for USDC options), `mark_iv` in percent,
    `underlying_price` the expiry's forward."""
    if isinstance(payload, Mapping) and "error" in payload and payload.get("error"):
        raise ChainError(f"Deribit error {_brief(payload['error'])}")
    rows = _rows(payload, "result")
    names = _name_columns(_field(rows, "instrument_name"), parse_deribit_name, underlying)
    oi = _floats(_field(rows, "open_interest"))
    oi[names.linear] *= DERIBIT_LINEAR_MULTIPLIER.get(underlying, 1.0)
    return _book(
        Venue.DERIBIT,
        underlying,
        names,
        oi=oi,
        iv=_floats(_field(rows, "mark_iv")) / 100.0,
        forward=_floats(_field(rows, "underlying_price")),
        now=now,
        at=_latest_millis(_field(rows, "creation_timestamp")),
    )


def parse_bybit(payload: Any, underlying: str, *, now: float) -> Book:
    """`/v5/market/tickers?category=option`: numbers as strings, `markIv` decimal,
    `openInterest` in coin, `underlyingPrice` the expiry's forward."""
    if isinstance(payload, Mapping) and payload.get("retCode") not in (0, None):
        raise ChainError(f"Bybit retCode {_brief(payload.get('retCode'))}")
    rows = _rows(payload, "result", "list")
    return _book(
        Venue.BYBIT,
        underlying,
        _name_columns(_field(rows, "symbol"), parse_bybit_name, underlying),
        oi=_floats(_field(rows, "openInterest")),
        iv=_floats(_field(rows, "markIv")),
        forward=_floats(_field(rows, "underlyingPrice")),
        now=now,
        at=_latest_millis([payload.get("time")]),
    )


def parse_okx(summary: Any, open_interest: Any, underlying: str, *, now: float) -> Book:
    """`/api/v5/public/opt-summary` (`markVol` decimal, `fwdPx`) joined with
    `/api/v5/public/open-interest` (`oiCcy` in coin) by `instId`."""
    for answer in (summary, open_interest):
        if isinstance(answer, Mapping) and str(answer.get("code", "0")) != "0":
            raise ChainError(f"OKX code {_brief(answer.get('code'))}")
    oi_rows = _rows(open_interest, "data")
    in_coin = _floats(_field(oi_rows, "oiCcy"))
    contracts = _floats(_field(oi_rows, "oi")) * OKX_MULTIPLIER.get(underlying, 1.0)
    coins = np.where(np.isnan(in_coin), contracts, in_coin)
    oi_ids = _field(oi_rows, "instId")
    rows = _rows(summary, "data")
    raw = _field(rows, "instId")
    if oi_ids == raw:  # the two answers list the same instruments in the same order (usual)
        oi = coins
    else:
        by_id: dict[str, float] = {}
        for inst, value in zip(oi_ids, coins.tolist(), strict=True):
            if type(inst) is str:
                by_id.setdefault(inst, value)  # the first row of a duplicated one wins
        oi = np.array(
            [by_id.get(n, np.nan) if type(n) is str else np.nan for n in raw], dtype=np.float64
        )
    return _book(
        Venue.OKX,
        underlying,
        _name_columns(raw, parse_okx_name, underlying),
        oi=oi,
        iv=_floats(_field(rows, "markVol")),
        forward=_floats(_field(rows, "fwdPx")),
        now=now,
        at=_latest_millis(_field(rows, "ts")),
    )


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"
