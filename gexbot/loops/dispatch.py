"""The delivery loop: runs the dispatcher whenever a cycle enqueued rows, and every second for
retries coming due; on stop it flushes what is due within a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gexbot.loops.deliver import Dispatcher
from gexbot.loops.health import Metrics
from gexbot.loops.waits import Changes, wait_either

log = logging.getLogger("gexbot")

FLUSH_DEADLINE = 5.0  # seconds allowed to deliver what is due after a stop signal
RETRY_CHECK_EVERY = 1.0


class DispatchLoop:
    """Every replica delivers: claims are conditional, so replicas never send a row twice."""

    def __init__(
        self, dispatcher: Dispatcher, *, metrics: Metrics, wake: asyncio.Event, changes: Changes
    ) -> None:
        self.dispatcher = dispatcher
        self._metrics = metrics
        self._wake = wake
        self._changes = changes

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop`, then flush what is due (bounded) and leave the rest."""
        while not stop.is_set():
            await self.pass_once()
            await wait_either(self._wake, stop, RETRY_CHECK_EVERY)
            self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.pass_once(), timeout=FLUSH_DEADLINE)

    async def pass_once(self) -> None:
        """One dispatch pass; a failure is logged and the loop goes on."""
        try:
            stats = await self.dispatcher.run_once()
        except Exception:
            log.exception("dispatch pass failed; retrying shortly")
            return
        for status, ids in (("sent", stats.sent), ("retry", stats.retried), ("dead", stats.dead)):
            if ids:
                self._metrics.deliveries.labels(channel="all", status=status).inc(len(ids))
        if stats.sent or stats.retried or stats.dead:
            self._changes.bump()
