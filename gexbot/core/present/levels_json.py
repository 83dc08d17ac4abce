"""`gexbot levels --format json`: every symbol's levels by their rule-language names, for
scripts and tests (pure; the CLI prints it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gexbot.core.chains.levels import ChainLevels
from gexbot.core.market.snapshot import BundleSnapshot, SymbolSnapshot, SymbolStatus

#: Why a symbol BackQuant did not serve has no levels, by its status.
_REASONS = {
    SymbolStatus.MISSING: "no data upstream right now (missing)",
    SymbolStatus.INVALID: "not a symbol BackQuant serves (invalid)",
}


def levels_document(
    bundle: BundleSnapshot,
    *,
    source: str,
    chains: Mapping[str, ChainLevels] | None = None,
    reasons: Mapping[str, str] | None = None,
    venues: Sequence[str] = (),
) -> dict[str, Any]:
    """`{"symbols": {SYMBOL: {...} | null}, "reasons": {SYMBOL: why}}`: a symbol without levels
    is null with its reason, never a level of 0."""
    chains = chains or {}
    symbols: dict[str, Any] = {}
    why: dict[str, str] = {}
    for sym, snap in bundle.symbols.items():
        if snap.status in _REASONS or snap.spot is None:
            symbols[sym] = None
            why[sym] = (reasons or {}).get(sym) or _REASONS.get(snap.status, "no spot price")
            continue
        symbols[sym] = _symbol(snap, source=source, chain=chains.get(sym), venues=venues)
    return {"symbols": symbols, "reasons": why}


def _symbol(
    snap: SymbolSnapshot, *, source: str, chain: ChainLevels | None, venues: Sequence[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "source": source,
        "status": snap.status.value,
        "spot": snap.spot,
        "computed_at": snap.computed_at.isoformat() if snap.computed_at else None,
        "levels": {level.value: value for level, value in snap.levels.items()},
        "max_pain_value": snap.max_pain_value,
        "ranked": [{"strike": r.strike, "gex": r.gex} for r in snap.ranked_all],
    }
    if chain is not None:
        out["venues"] = list(chain.venues or venues)
        out["zero_gamma"] = chain.zero_gamma
        out["net_gex"] = chain.net_gex
        out["roll_off"] = {level.value: share for level, share in chain.roll_off.items()}
        out["contracts"] = chain.contracts
    return out
