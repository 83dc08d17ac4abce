"""One underlying's options as columns: a row per (expiry, strike, type), summed across venues."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


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
    """Every live option of one underlying, columns of equal length."""

    expiry: Floats
    strike: Floats
    is_call: Bools
    oi: Floats
    iv: Floats
    forward: Floats
    venues: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.strike)


def merge(books: Sequence[tuple[str, Sequence[Contract]]], *, now: float) -> Contracts:
    """One set of contracts from several venues' books: open interest summed in coin per
    (expiry, strike, type); IV and forward weighted by each venue's open interest (a row with
    none weighs equally). Expired rows and rows no gamma can be computed for (no IV, no
    forward) are dropped, never given made-up values."""
    rows = [
        c
        for _, book in books
        for c in book
        if c.expiry > now and c.iv > 0 and c.forward > 0 and c.strike > 0 and c.oi >= 0
    ]
    venues = tuple(name for name, book in books if book)
    if not rows:
        empty = np.zeros(0)
        return Contracts(empty, empty, np.zeros(0, dtype=bool), empty, empty, empty, venues)
    expiry = np.array([c.expiry for c in rows])
    strike = np.array([c.strike for c in rows])
    is_call = np.array([c.is_call for c in rows])
    oi = np.array([c.oi for c in rows])
    iv = np.array([c.iv for c in rows])
    forward = np.array([c.forward for c in rows])
    keys = np.stack([expiry, strike, is_call.astype(np.float64)], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    n = len(unique)
    weight = np.where(oi > 0, oi, 1e-12)
    total_w = np.bincount(inverse, weights=weight, minlength=n)
    return Contracts(
        expiry=unique[:, 0].copy(),
        strike=unique[:, 1].copy(),
        is_call=unique[:, 2] > 0.5,
        oi=np.bincount(inverse, weights=oi, minlength=n).astype(np.float64),
        iv=np.bincount(inverse, weights=iv * weight, minlength=n) / total_w,
        forward=np.bincount(inverse, weights=forward * weight, minlength=n) / total_w,
        venues=venues,
    )
