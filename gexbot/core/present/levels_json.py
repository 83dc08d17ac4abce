"""`gexbot levels --format json`: every symbol's levels by their rule-language names, for
scripts and tests (pure; the CLI prints it)."""

from __future__ import annotations

from typing import Any

from gexbot.core.market.snapshot import BundleSnapshot, Level, SymbolSnapshot, SymbolStatus

#: Why a symbol BackQuant did not serve has no levels, by its status.
_REASONS = {
    SymbolStatus.MISSING: "no data upstream right now (missing)",
    SymbolStatus.INVALID: "not a symbol BackQuant serves (invalid)",
}


def levels_document(bundle: BundleSnapshot) -> dict[str, Any]:
    """`{"symbols": {SYMBOL: {...} | null}, "reasons": {SYMBOL: why}}`: a symbol without levels
    is null with its reason, never a level of 0."""
    symbols: dict[str, Any] = {}
    why: dict[str, str] = {}
    for sym, snap in bundle.symbols.items():
        if snap.status in _REASONS or snap.spot is None:
            symbols[sym] = None
            why[sym] = snap.unavailable or _REASONS.get(snap.status, "no spot price")
            continue
        symbols[sym] = _symbol(snap)
    return {"symbols": symbols, "reasons": why}


def _symbol(snap: SymbolSnapshot) -> dict[str, Any]:
    out: dict[str, Any] = {
        "source": "chains" if snap.chain is not None else "backquant",
        "status": snap.status.value,
        "spot": snap.spot,
        "computed_at": snap.computed_at.isoformat() if snap.computed_at else None,
        "levels": {level.value: value for level, value in snap.levels.items()},
        "max_pain_value": snap.max_pain_value,
        "ranked": [{"strike": r.strike, "gex": r.gex} for r in snap.ranked_all],
    }
    if snap.chain is not None:
        out["venues"] = list(snap.chain.venues)
        out["zero_gamma"] = snap.levels.get(Level.ZERO_GAMMA)
        out["net_gex"] = snap.chain.net_gex
        out["roll_off"] = {level.value: share for level, share in snap.chain.roll_off.items()}
        out["settles_at"] = snap.chain.settles_at.isoformat()
        out["contracts"] = snap.chain.contracts
    if snap.fallback is not None:
        out["fallback"] = snap.fallback
    if snap.agreement is not None:
        out["agreement"] = {
            "checked_at": snap.agreement.checked_at.isoformat(),
            "agrees": not snap.agreement.disagreeing,
            "differences": [
                {
                    "level": d.level.value,
                    "backquant": d.backquant,
                    "chains": d.chains,
                    "checks": d.checks,
                }
                for d in snap.agreement.differences
            ],
        }
    return out
