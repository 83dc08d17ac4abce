"""One underlying's options as columns: a row per (expiry, strike, type), summed across venues."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


class ChainError(ValueError):
    """A venue's answer could not be read as an option chain (the only error parsers raise)."""


@dataclass(frozen=True, slots=True)
class Contract:
    """One listed option as a venue reports it, in common units."""

    expiry: float  # settlement, epoch seconds
    strike: float  # USD
    is_call: bool
    oi: float  # open interest in coin
    iv: float  # implied vol, annualised decimal (0.45, not 45)
    forward: float  # the expiry's forward (or the venue's underlying price), USD


@dataclass(frozen=True, slots=True)
class Contracts:
    """Options of one underlying as columns of equal length (one venue's book, or every
    venue's merged)."""

    expiry: Floats
    strike: Floats
    is_call: Bools
    oi: Floats
    iv: Floats
    forward: Floats
    venues: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.strike)

    def __iter__(self) -> Iterator[Contract]:
        """The rows (for tests and tools: the computations read the columns)."""
        for row in zip(
            self.expiry.tolist(),
            self.strike.tolist(),
            self.is_call.tolist(),
            self.oi.tolist(),
            self.iv.tolist(),
            self.forward.tolist(),
            strict=True,
        ):
            yield Contract(*row)

    @classmethod
    def empty(cls, venues: tuple[str, ...] = ()) -> Contracts:
        """No contracts."""
        none = np.zeros(0)
        return cls(none, none, np.zeros(0, dtype=np.bool_), none, none, none, venues)

    @classmethod
    def of(cls, rows: Iterable[Contract]) -> Contracts:
        """Rows as columns (hand-built chains)."""
        rows = list(rows)
        return cls(
            expiry=np.array([c.expiry for c in rows], dtype=np.float64),
            strike=np.array([c.strike for c in rows], dtype=np.float64),
            is_call=np.array([c.is_call for c in rows], dtype=np.bool_),
            oi=np.array([c.oi for c in rows], dtype=np.float64),
            iv=np.array([c.iv for c in rows], dtype=np.float64),
            forward=np.array([c.forward for c in rows], dtype=np.float64),
        )


def first_of_each(expiry: Floats, strike: Floats, is_call: Bools) -> tuple[Ints, Ints]:
    """Rows grouped by (expiry, strike, type), groups numbered in key order: each group's
    first row (the earliest in row order) and, per row, its group's number. One stable sort,
    not a search per row."""
    order = np.lexsort((is_call, strike, expiry))  # stable: equal keys keep row order
    e, k, c = expiry[order], strike[order], is_call[order]
    starts = np.ones(len(order), dtype=np.bool_)
    starts[1:] = (e[1:] != e[:-1]) | (k[1:] != k[:-1]) | (c[1:] != c[:-1])
    group_sorted = np.cumsum(starts) - 1
    group = np.empty(len(order), dtype=np.int64)
    group[order] = group_sorted
    return order[starts], group


def merge(books: Sequence[tuple[str, Contracts | Sequence[Contract]]], *, now: float) -> Contracts:
    """One set of contracts from several venues' books: open interest summed in coin per
    (expiry, strike, type); IV and forward weighted by each venue's open interest (a row with
    none weighs equally). Expired rows and rows no gamma can be computed for (no IV, no
    forward) are dropped, never given made-up values."""
    parts = [b if isinstance(b, Contracts) else Contracts.of(b) for _, b in books]
    venues = tuple(name for (name, _), part in zip(books, parts, strict=True) if len(part))
    if not any(len(p) for p in parts):
        return Contracts.empty(venues)
    expiry = np.concatenate([p.expiry for p in parts])
    strike = np.concatenate([p.strike for p in parts])
    is_call = np.concatenate([p.is_call for p in parts])
    oi = np.concatenate([p.oi for p in parts])
    iv = np.concatenate([p.iv for p in parts])
    forward = np.concatenate([p.forward for p in parts])
    live = (expiry > now) & (iv > 0) & (forward > 0) & (strike > 0) & (oi >= 0)
    if not live.all():
        expiry, strike, is_call = expiry[live], strike[live], is_call[live]
        oi, iv, forward = oi[live], iv[live], forward[live]
    if len(expiry) == 0:
        return Contracts.empty(venues)
    first, group = first_of_each(expiry, strike, is_call)
    n = len(first)
    # Below a billionth of a coin, every row weighs the same (and a denormal cannot vanish).
    weight = np.maximum(oi, 1e-9)
    total_w = np.bincount(group, weights=weight, minlength=n)
    return Contracts(
        expiry=expiry[first],
        strike=strike[first],
        is_call=is_call[first],
        oi=np.bincount(group, weights=oi, minlength=n).astype(np.float64),
        iv=np.bincount(group, weights=iv * weight, minlength=n) / total_w,
        forward=np.bincount(group, weights=forward * weight, minlength=n) / total_w,
        venues=venues,
    )
