"""Console rendering with Rich: the levels table."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from gexbot.core.market.snapshot import Regime, SymbolStatus
from gexbot.core.market.symbols import SUPPORTED_SYMBOLS
from gexbot.core.present.format import fmt_age, fmt_pct, fmt_price
from gexbot.core.present.levels_view import LevelsView

_REGIME_STYLE = {
    Regime.ABOVE_HVL: "green",
    Regime.BELOW_HVL: "red",
    Regime.AT_HVL: "yellow",
    Regime.UNKNOWN: "dim",
}


def levels_table(view: LevelsView) -> RenderableType:
    """One symbol's levels: value and distance from spot, with regime and data age on top."""
    if view.status is SymbolStatus.INVALID:
        return Text(
            f"{view.symbol}: not a supported symbol (supported: {', '.join(SUPPORTED_SYMBOLS)})",
            style="red",
        )
    if view.status is SymbolStatus.MISSING:
        why = view.unavailable or "no data upstream right now (missing)"
        return Text(f"{view.symbol}: {why}", style="yellow")
    title = Text.assemble(
        (view.symbol, "bold"),
        "  spot ",
        (fmt_price(view.spot), "bold"),
        "  ",
        (view.regime.value, _REGIME_STYLE[view.regime]),
        "  data age ",
        (fmt_age(view.age_seconds), "red" if view.status is SymbolStatus.STALE else ""),
    )
    if view.status is SymbolStatus.STALE:
        title.append("  STALE", style="bold red")
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("level")
    table.add_column("value", justify="right")
    table.add_column("from spot", justify="right")
    spot_shown = view.spot is None
    for row in view.rows:
        if not spot_shown and view.spot is not None and row.value < view.spot:
            table.add_row(Text("▶ spot", style="bold"), Text(fmt_price(view.spot), style="bold"))
            spot_shown = True
        dist = row.distance_pct
        style = "" if dist is None else ("green" if dist > 0 else "red")
        table.add_row(row.label, fmt_price(row.value), Text(fmt_pct(dist), style=style))
    if not spot_shown:
        table.add_row(Text("▶ spot", style="bold"), Text(fmt_price(view.spot), style="bold"))
    notes = [Text(line, style="dim") for line in view.notes]
    return Group(title, *notes, table, Text(""))
