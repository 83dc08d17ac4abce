"""`gexbot levels` and `gexbot chart`: what upstream serves now."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from rich.console import Console

from gexbot.adapters.backquant import MULTI_INCLUDES, FetchError
from gexbot.adapters.dual import DualSource
from gexbot.app import backquant_client, levels_source, real_runtime, utcnow
from gexbot.cli import EXIT_FAILED, EXIT_INVALID, EXIT_OK
from gexbot.cli.tables import levels_table
from gexbot.core.market.snapshot import BundleSnapshot
from gexbot.core.market.symbols import SUPPORTED_SYMBOLS, normalize_symbol
from gexbot.core.present.levels_json import levels_document
from gexbot.core.present.levels_view import levels_view
from gexbot.settings import Settings


def print_bundle(console: Console, bundle: BundleSnapshot) -> None:
    now = utcnow()
    for snap in bundle.symbols.values():
        console.print(levels_table(levels_view(snap, now)))


async def one_look(settings: Settings, symbols: list[str]) -> BundleSnapshot:
    """Every level of `symbols` from the source in force, once (`levels`, `demo --levels`).
    With both sources, the cross-check the look starts is waited for, so it is shown too."""
    async with levels_source(settings, runtime=real_runtime()) as source:
        bundle = await source.bundle(symbols, MULTI_INCLUDES, settings.exchanges)
        if isinstance(source, DualSource):
            await source.checked()
            bundle = source.with_agreements(bundle)
    return bundle


async def levels(
    settings: Settings, names: list[str], console: Console, err: Console, *, fmt: str = "table"
) -> int:
    """`gexbot levels`: the current levels of `names` (default: the universe), as tables or
    as one JSON document, from the source in force (GEXBOT_SOURCE)."""
    symbols = [normalize_symbol(s) for s in names] or settings.symbols
    try:
        bundle = await one_look(settings, symbols)
    except FetchError as exc:
        err.print(f"gexbot levels: {exc}", style="red", markup=False, highlight=False)
        return EXIT_FAILED
    if fmt == "json":
        console.file.write(json.dumps(levels_document(bundle), indent=2) + "\n")
        return EXIT_OK
    print_bundle(console, bundle)
    return EXIT_OK


async def chart(settings: Settings, symbol: str, output: Path, err: Console) -> int:
    from gexbot.charts.render import render_chart  # matplotlib only when charting

    sym = normalize_symbol(symbol)
    if sym not in SUPPORTED_SYMBOLS:
        err.print(
            f"gexbot chart: unknown symbol {symbol}; supported: {', '.join(SUPPORTED_SYMBOLS)}",
            markup=False,
            highlight=False,
        )
        return EXIT_INVALID
    async with backquant_client(settings, runtime=real_runtime()) as client:
        try:
            snap = await client.levels(sym, ["candles", "spot", "expected_move", "max_pain"])
        except FetchError as exc:
            err.print(f"gexbot chart: {exc}", markup=False, highlight=False)
            return EXIT_FAILED
    png = await asyncio.to_thread(render_chart, snap)
    await asyncio.to_thread(output.write_bytes, png)
    err.print(f"wrote {output} ({len(png) // 1024} KB)", markup=False, highlight=False)
    return EXIT_OK
