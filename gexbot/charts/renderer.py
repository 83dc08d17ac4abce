"""Charts are drawn in a renderer process of their own, started lazily and restarted when it
crashes or hangs, so a render never stalls the bot's event loop (matplotlib holds the GIL for
most of a render) and matplotlib's memory never lands in the bot's process.

One long-lived process, one render at a time: charts are made once per symbol and refresh
(the cache), so a second worker would mostly sit idle holding its own 100 MB.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from gexbot.charts.worker import HEADER, frame
from gexbot.core.market.snapshot import SymbolSnapshot

log = logging.getLogger(__name__)

RENDER = "gexbot.charts.render:render_chart"
RENDER_TIMEOUT = 20.0  # a render takes ~0.2 s; past this the renderer is hung: restart it
START_TIMEOUT = 60.0  # a cold start imports matplotlib and may build its font cache


class ChartError(Exception):
    """No chart this time (the renderer failed, hung or crashed); the next call retries."""


class ChartRenderer:
    """`await renderer.render(snap, prices)`: PNG bytes from the renderer process."""

    def __init__(self, *, target: str = RENDER, timeout: float = RENDER_TIMEOUT) -> None:
        self._target = target
        self._timeout = timeout
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self.restarts = 0
        self.peak_rss_mb: float | None = None  # the renderer's, as it last reported

    @property
    def pid(self) -> int | None:
        """The renderer process's id while it runs."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    async def warm_up(self) -> None:
        """Start the renderer now (it loads matplotlib), not under the first reply."""
        async with self._lock:
            await self._ensure()

    async def render(
        self, snap: SymbolSnapshot, prices: Sequence[tuple[datetime, float]] = ()
    ) -> bytes:
        """The chart of `snap`; raises ChartError when the renderer cannot make it."""
        # A mapping proxy does not pickle: the renderer gets a plain dict of the same levels.
        request = frame((replace(snap, levels=dict(snap.levels)), list(prices)))
        async with self._lock:
            process = await self._ensure()
            try:
                stdin, _ = _pipes(process)
                stdin.write(request)
                await stdin.drain()
                status, value = await self._answer(process, self._timeout)
            except ChartError:
                await self._stop(kill=True)
                raise
            except ConnectionError:  # the pipe broke under the request: it died
                await self._stop(kill=True)
                raise ChartError("the renderer crashed; restarted") from None
        if status != "ok":
            raise ChartError(f"the renderer could not draw {snap.symbol}: {value}")
        png: bytes = value
        return png

    async def close(self) -> None:
        """Stop the renderer (it is started again on the next render)."""
        async with self._lock:
            await self._stop(kill=False)

    async def _ensure(self) -> asyncio.subprocess.Process:
        if self._process is not None and self._process.returncode is None:
            return self._process
        if self._process is not None:
            log.warning(
                "the chart renderer had stopped (exit code %s); restarting it",
                self._process.returncode,
            )
            await self._stop(kill=True)
            self.restarts += 1
        # The bot's own import path, so the renderer loads the same code the bot runs.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "gexbot.charts.worker", self._target),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        self._process = process
        try:
            status, value = await self._answer(process, START_TIMEOUT)
        except ChartError:
            await self._stop(kill=True)
            raise
        if status != "ready":
            raise ChartError(f"the renderer did not start: {value}")
        return process

    async def _answer(self, process: asyncio.subprocess.Process, within: float) -> tuple[str, Any]:
        _, stdout = _pipes(process)
        try:
            async with asyncio.timeout(within):
                header = await stdout.readexactly(HEADER.size)
                body = await stdout.readexactly(HEADER.unpack(header)[0])
        except TimeoutError:
            raise ChartError(f"the renderer did not answer within {within:g}s; restarted") from None
        except (asyncio.IncompleteReadError, ConnectionError):
            raise ChartError("the renderer crashed; restarted") from None
        status, value, rss = pickle.loads(body)  # noqa: S301 - our own child process
        self.peak_rss_mb = rss
        return status, value

    async def _stop(self, *, kill: bool) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if kill and process.returncode is None:
            process.kill()
        if process.stdin is not None:
            process.stdin.close()  # end of input: a live renderer exits
        try:
            await asyncio.wait_for(process.wait(), timeout=5)
        except TimeoutError:
            process.kill()
            await process.wait()


def _pipes(
    process: asyncio.subprocess.Process,
) -> tuple[asyncio.StreamWriter, asyncio.StreamReader]:
    if process.stdin is None or process.stdout is None:  # started without pipes: a bug here
        raise RuntimeError("the renderer process has no pipes")
    return process.stdin, process.stdout
