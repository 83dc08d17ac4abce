"""Small asyncio helpers the loops share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

DRAIN_SECONDS = 5.0


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def wait_either(first: asyncio.Event, stop: asyncio.Event, seconds: float) -> None:
    """Wait until `first` or `stop` is set, or `seconds` pass (whichever comes first)."""
    waiters = {asyncio.ensure_future(first.wait()), asyncio.ensure_future(stop.wait())}
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class Background:
    """Work that must not hold up a reply (a chart after its text): started now, kept
    referenced until done, its failure logged, and waited for (bounded) at the end."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background."""

        async def run() -> None:
            try:
                await work
            except Exception:  # noqa: BLE001 - background work (a chart after a reply) must
                # never end the loop that started it; the traceback is logged.
                self._log.exception("%s failed", self._what)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for what is still running, at most DRAIN_SECONDS."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=DRAIN_SECONDS)


class DatabaseOutage:
    """How a loop lives through a database outage: one warning when it begins, waits that
    grow from 1 s to 30 s while it lasts, one line when it is over."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self._failures = 0

    def failed(self, exc: Exception) -> float:
        """Record a failure; the seconds to wait before trying again."""
        if self._failures == 0:
            self._log.warning(
                "%s: the database is unavailable (%s); retrying", self._what, type(exc).__name__
            )
        self._failures += 1
        return float(min(30, 2 ** (self._failures - 1)))

    def over(self) -> None:
        """Record a success; logs the recovery once."""
        if self._failures:
            self._log.info("%s: the database is back", self._what)
        self._failures = 0


class Changes:
    """A counter that says "something changed" to whoever waits (the console's live view):
    bumped after each cycle and each delivery pass that did something."""

    def __init__(self) -> None:
        self.version = 0
        self._changed = asyncio.Event()

    def bump(self) -> None:
        """Something changed: wake every waiter."""
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def after(self, version: int, at_most: float) -> int:
        """The version once it is past `version`, or after `at_most` s, whichever first."""
        if self.version == version:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=at_most)
        return self.version
