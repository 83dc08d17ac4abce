"""The running bot: its loops under one TaskGroup, and its HTTP server.

With several replicas on PostgreSQL only the leader (loops/leadership.py) polls, evaluates and
commits cycles (loops/poll.py); every replica delivers (loops/dispatch.py) and reloads its rules
(loops/reload.py). SIGINT/SIGTERM only set `stop`: the current cycle finishes, due deliveries
are flushed within a deadline, and the process exits 0. The service builds nothing: `gexbot.app`
hands it every part.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gexbot.adapters.notify import Notifier
from gexbot.charts.cache import ChartCache
from gexbot.loops.cycle import Pipeline
from gexbot.loops.deliver import Dispatcher
from gexbot.loops.dispatch import DispatchLoop
from gexbot.loops.health import Health, HealthServer, Metrics
from gexbot.loops.latest import LatestLevels
from gexbot.loops.leadership import Leadership
from gexbot.loops.poll import PollLoop
from gexbot.loops.reload import RulesReload
from gexbot.loops.waits import Changes

log = logging.getLogger("gexbot")

ChatLoop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
HttpRoutes = Callable[[web.Application], None]


@dataclass(frozen=True, slots=True)
class Listen:
    """Where the HTTP server listens (GEXBOT_HTTP_HOST, GEXBOT_HTTP_PORT)."""

    host: str
    port: int


class Service:
    """One running gexbot process: every loop, under one TaskGroup."""

    def __init__(
        self,
        *,
        leadership: Leadership,
        poll: PollLoop,
        dispatch: DispatchLoop,
        reload: RulesReload,
        pipeline: Pipeline,
        health: Health,
        metrics: Metrics,
        latest: LatestLevels,
        charts: ChartCache,
        changes: Changes,
        notifiers: Mapping[str, Notifier],
        chat_loops: Sequence[ChatLoop],
        http_routes: Sequence[HttpRoutes],
        listen: Listen | None,
        warm_charts: Callable[[], bool],
    ) -> None:
        self.leadership = leadership
        self.poll = poll
        self.dispatch = dispatch
        self.reload = reload
        self.pipeline = pipeline
        self.health = health
        self.metrics = metrics
        self.latest = latest
        self.charts = charts
        self.changes = changes
        self._notifiers = notifiers
        self._chat_loops = list(chat_loops)
        self.http_routes = list(http_routes)
        self._listen = listen
        self._warm_charts = warm_charts

    @property
    def dispatcher(self) -> Dispatcher:
        """The outbox dispatcher the delivery loop runs."""
        return self.dispatch.dispatcher

    async def close_notifiers(self) -> None:
        """Close every notifier's connections (best effort: the process is ending)."""
        for notifier in self._notifiers.values():
            with contextlib.suppress(Exception):
                await notifier.close()

    async def _warm_up(self) -> None:
        try:
            await self.charts.warm_up()
        except Exception as exc:  # noqa: BLE001 - charts are extra: a failed warm-up only
            # makes the first chart slower, and must not end the TaskGroup.
            log.warning("chart warm-up failed (%s)", type(exc).__name__)

    async def run(self, stop: asyncio.Event) -> None:
        """Every loop, until `stop`."""
        server = None
        if self._listen is not None:
            server = HealthServer(
                self.metrics, self.health, status=self.health.status, routes=self.http_routes
            )
            url = await server.start(self._listen.host, self._listen.port)
            log.info("health and metrics on %s/healthz and %s/metrics", url, url)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.leadership.run(stop))
                tasks.create_task(self.poll.run(stop))
                tasks.create_task(self.dispatch.run(stop))
                tasks.create_task(self.reload.run(stop))
                if self._chat_loops or self._warm_charts():
                    tasks.create_task(self._warm_up())
                for chat_loop in self._chat_loops:
                    tasks.create_task(chat_loop(stop))
        finally:
            if server is not None:
                await server.stop()
            await self.close_notifiers()
            await self.charts.close()
