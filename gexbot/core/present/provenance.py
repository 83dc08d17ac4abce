"""Where a symbol's levels came from and whether the two sources agree, as one line each for
`/levels`, `gexbot levels` and the web console."""

from __future__ import annotations

from gexbot.core.market.snapshot import Level, SymbolSnapshot
from gexbot.core.present.format import fmt_price
from gexbot.core.present.labels import level_label, source_name


def source_line(snap: SymbolSnapshot) -> str:
    """`source: BackQuant`, or `source: Deribit + OKX chains (BackQuant has no data for it)`."""
    why = f" (BackQuant {snap.fallback})" if snap.fallback else ""
    return f"source: {source_name(snap)}{why}"


def chain_line(snap: SymbolSnapshot) -> str | None:
    """What only a chain gives: `net GEX +46.1M USD per 1% (dealers long gamma) · zero gamma
    68,030`; None for BackQuant's levels."""
    chain = snap.chain
    if chain is None:
        return None
    side = "long" if chain.net_gex > 0 else "short"
    zero = snap.level(Level.ZERO_GAMMA)
    tail = (
        f" · zero gamma {fmt_price(zero)}" if zero is not None else " · no zero gamma within ±20%"
    )
    return f"net GEX {chain.net_gex / 1e6:+,.1f}M USD per 1% (dealers {side} gamma){tail}"


def agreement_line(snap: SymbolSnapshot) -> str | None:
    """The last cross-check (`both`), or None when there has been none."""
    a = snap.agreement
    if a is None:
        return None
    at = a.checked_at.strftime("%H:%M UTC")
    if not a.differences:
        return f"cross-check {at}: BackQuant std and the chains agree"
    word = "DISAGREE" if a.disagreeing else "differ"
    parts = ", ".join(
        f"{level_label(d.level.value)} {fmt_price(d.backquant)} vs {fmt_price(d.chains)}"
        + (f" ({d.checks} checks)" if d.checks > 1 else "")
        for d in a.differences
    )
    return f"cross-check {at}: BackQuant std and the chains {word} on {parts}"
