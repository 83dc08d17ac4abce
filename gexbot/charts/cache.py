"""The levels chart of each symbol, made once per refresh and shared.

Upstream refreshes about every poll interval, so within half of one a chart is still current:
one single-symbol request and one render then serve every destination of an alert and every
chat asking for `/levels`. matplotlib is imported on first use (off the event loop), not at
start-up.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine

from gexbot.adapters.backquant import BackQuantClient


class ChartCache:
    """`await charts(symbol)`: the PNG, from the cache while younger than `ttl` seconds."""

    def __init__(
        self,
        client: BackQuantClient,
        engine: Engine,
        *,
        ttl: float,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._engine = engine
        self._ttl = ttl
        self._clock = clock
        self._monotonic = monotonic
        self._kept: dict[str, tuple[float, bytes]] = {}  # symbol → (expires, png)
        self._one_at_a_time = asyncio.Lock()

    async def warm_up(self) -> None:
        """Import matplotlib and draw once, in a thread: the first draw loads fonts and holds
        the GIL for about half a second, which must happen at start, not under a reply."""
        charts = await asyncio.to_thread(importlib.import_module, "gexbot.charts.render")
        await asyncio.to_thread(charts.warm_up)

    async def __call__(self, symbol: str) -> bytes:
        """The chart of `symbol` (raises what fetching or rendering raises)."""
        # The first import of matplotlib takes about half a second: not on the event loop.
        charts = await asyncio.to_thread(importlib.import_module, "gexbot.charts.render")
        # One render at a time: a render holds the GIL most of its ~170 ms, and several at
        # once starve the event loop that sends the text replies. Waiting here also lets a
        # second ask for the same symbol take the first one's chart.
        async with self._one_at_a_time:
            kept = self._kept.get(symbol)
            if kept is not None and self._monotonic() < kept[0]:
                return kept[1]
            png: bytes = await charts.chart_for(
                self._client, self._engine, symbol, now=self._clock()
            )
            self._kept[symbol] = (self._monotonic() + self._ttl, png)
            return png
