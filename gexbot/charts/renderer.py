"""Charts are drawn in a renderer process of their own, started lazily and restarted when it
crashes or hangs, so a render never stalls the bot's event loop (matplotlib holds the GIL for
most of a render) and matplotlib's memory never lands in the bot's process.

One long-lived process, one render at a time: charts are made once per symbol and refresh
(the cache), so a second worker would mostly sit idle holding 80 MB.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from gexbot.charts.worker import serve
from gexbot.core.snapshot import SymbolSnapshot

log = logging.getLogger(__name__)

RENDER = "gexbot.charts.render:render_chart"
RENDER_TIMEOUT = 20.0  # a render takes ~0.2 s; past this the renderer is hung: restart it
START_TIMEOUT = 60.0  # a cold start imports matplotlib and builds its font cache


class ChartError(Exception):
    """No chart this time (the renderer failed, hung or crashed); the next call retries."""


class ChartRenderer:
    """`await renderer.render(snap, prices)`: PNG bytes from the renderer process."""

    def __init__(self, *, target: str = RENDER, timeout: float = RENDER_TIMEOUT) -> None:
        self._target = target
        self._timeout = timeout
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()
        self.restarts = 0
        self.peak_rss_mb: float | None = None  # the renderer's, as it last reported

    async def warm_up(self) -> None:
        """Start the renderer now (it loads matplotlib), not under the first reply."""
        async with self._lock:
            await self._ensure()

    async def render(
        self, snap: SymbolSnapshot, prices: Sequence[tuple[datetime, float]] = ()
    ) -> bytes:
        """The chart of `snap`; raises ChartError when the renderer cannot make it."""
        # A mapping proxy does not pickle: the renderer gets a plain dict of the same levels.
        request = (replace(snap, levels=dict(snap.levels)), list(prices))
        async with self._lock:
            conn = await self._ensure()
            try:
                await asyncio.to_thread(conn.send, request)
                status, value = await self._answer(conn, self._timeout)
            except ChartError:
                await self._stop(kill=True)
                raise
        if status != "ok":
            raise ChartError(f"the renderer could not draw {snap.symbol}: {value}")
        png: bytes = value
        return png

    async def close(self) -> None:
        """Stop the renderer (it is started again on the next render)."""
        async with self._lock:
            await self._stop(kill=False)

    async def _ensure(self) -> Connection:
        if self._process is not None and self._process.is_alive() and self._conn is not None:
            return self._conn
        if self._process is not None:
            log.warning(
                "the chart renderer had stopped (exit code %s); restarting it",
                self._process.exitcode,
            )
            await self._stop(kill=True)
            self.restarts += 1
        # spawn, not fork: the bot has threads (database pools, asyncio) a fork would copy.
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=serve, args=(child, self._target), name="gexbot-charts", daemon=True
        )
        await asyncio.to_thread(process.start)
        child.close()
        self._process, self._conn = process, parent
        status, value = await self._answer(parent, START_TIMEOUT)
        if status != "ready":
            raise ChartError(f"the renderer did not start: {value}")
        return parent

    async def _answer(self, conn: Connection, within: float) -> tuple[str, Any]:
        # conn.poll waits in a worker thread: the event loop stays free meanwhile.
        ready = await asyncio.to_thread(conn.poll, within)
        if not ready:
            raise ChartError(f"the renderer did not answer within {within:g}s; restarted")
        try:
            status, value, rss = await asyncio.to_thread(conn.recv)
        except (EOFError, OSError):
            raise ChartError("the renderer crashed; restarted") from None
        self.peak_rss_mb = rss
        return status, value

    async def _stop(self, *, kill: bool) -> None:
        process, conn = self._process, self._conn
        self._process, self._conn = None, None
        if conn is not None:
            if not kill:
                with contextlib.suppress(OSError, ValueError):
                    conn.send(None)
            conn.close()
        if process is not None:
            if kill:
                process.kill()
            await asyncio.to_thread(process.join, 5)
            if process.is_alive():
                process.kill()
