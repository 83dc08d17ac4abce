"""The levels chart of each symbol, made once per refresh and shared.

Upstream refreshes about every poll interval, so within half of one a chart is still current:
one single-symbol request and one render then serve every destination of an alert and every
chat asking for `/levels`. The render itself happens in the renderer process (renderer.py):
this module, and so the bot, never imports matplotlib.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine

from gexbot.adapters.source import LevelsSource
from gexbot.charts.renderer import ChartRenderer
from gexbot.core.market.snapshot import SymbolSnapshot, SymbolStatus
from gexbot.store.snapshots import load_history

#: What a chart shows beyond the bundle's levels.
CHART_FIELDS = ["candles", "spot", "expected_move", "max_pain"]


class ChartCache:
    """`await charts(symbol)`: the PNG, from the cache while younger than `ttl` seconds."""

    def __init__(
        self,
        client: LevelsSource,
        engine: Engine,
        renderer: ChartRenderer,
        *,
        ttl: float,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float],
    ) -> None:
        self._client = client
        self._engine = engine
        self.renderer = renderer  # public: its process's memory is reported beside the bot's
        self._ttl = ttl
        self._clock = clock
        self._monotonic = monotonic
        self._kept: dict[str, tuple[float, bytes]] = {}  # symbol → (expires, png)
        # symbol → (computed_at, png): charts of snapshots the bot already holds (the console)
        self._by_refresh: dict[str, tuple[datetime | None, bytes]] = {}
        self._per_symbol: dict[str, asyncio.Lock] = {}

    async def warm_up(self) -> None:
        """Start the renderer and draw once (matplotlib loads its fonts on the first draw),
        so the first real chart is not the slow one."""
        await self.renderer.warm_up()
        await self.renderer.render(SymbolSnapshot(symbol="BTCUSDT", status=SymbolStatus.OK))

    async def close(self) -> None:
        """Stop the renderer process."""
        await self.renderer.close()

    async def __call__(self, symbol: str) -> bytes:
        """The chart of `symbol` (raises what fetching raises, or ChartError)."""
        # One fetch and render per symbol at a time: a second ask for the same symbol waits
        # for and takes the first one's chart.
        async with self._per_symbol.setdefault(symbol, asyncio.Lock()):
            kept = self._kept.get(symbol)
            if kept is not None and self._monotonic() < kept[0]:
                return kept[1]
            png = await self._draw(await self._client.levels(symbol, CHART_FIELDS))
            self._kept[symbol] = (self._monotonic() + self._ttl, png)
            return png

    async def of_snapshot(self, snap: SymbolSnapshot) -> bytes:
        """The chart of a snapshot the bot already holds (the latest poll's): no upstream
        request, one render per upstream refresh; a fresh chart made for an alert or
        `/levels` (with candles) is taken instead when there is one."""
        async with self._per_symbol.setdefault(snap.symbol, asyncio.Lock()):
            kept = self._kept.get(snap.symbol)
            if kept is not None and self._monotonic() < kept[0]:
                return kept[1]
            made = self._by_refresh.get(snap.symbol)
            if made is not None and made[0] == snap.computed_at:
                return made[1]
            png = await self._draw(snap)
            self._by_refresh[snap.symbol] = (snap.computed_at, png)
            return png

    async def _draw(self, snap: SymbolSnapshot) -> bytes:
        """Render `snap`, with the bot's stored spot history when it has no candles."""
        prices: list[tuple[datetime, float]] = []
        if not snap.candles:
            prices = await asyncio.to_thread(
                stored_prices, self._engine, snap.symbol, now=self._clock()
            )
        return await self.renderer.render(snap, prices)


def stored_prices(engine: Engine, symbol: str, *, now: datetime) -> list[tuple[datetime, float]]:
    """The bot's own spot history of the last day: the chart's fallback when there are no
    candles."""
    with engine.connect() as conn:
        history = load_history(conn, symbol, since=now - timedelta(days=1))
    return [(s.computed_at, s.spot) for s in history if s.computed_at and s.spot is not None]
