"""Hot reload of the rule files: on SIGHUP or when the files change; an invalid new version is
refused (one warning) and the previous rules stay active."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import Engine

from gexbot.adapters.notify import Notifier
from gexbot.core.alerts.evaluate import index_rules
from gexbot.core.alerts.events import ALL_SYMBOLS, WarningKind, warning_event
from gexbot.core.alerts.states import NotifyReason
from gexbot.loops.cycle import Pipeline
from gexbot.loops.deliver import Dispatcher, build_routes
from gexbot.loops.leadership import Leadership
from gexbot.loops.rules import RulesWatcher
from gexbot.loops.waits import wait_either
from gexbot.store.outbox import enqueue

log = logging.getLogger("gexbot")

CHECK_EVERY = 2.0  # seconds between looks at the files


class RulesReload:
    """Applies a new version of the rules to the cycle and the dispatcher."""

    def __init__(
        self,
        watcher: RulesWatcher,
        *,
        pipeline: Pipeline,
        dispatcher: Dispatcher,
        leadership: Leadership,
        notifiers: Mapping[str, Notifier],
        engine: Engine,
        clock: Callable[[], datetime],
        wake: asyncio.Event,
    ) -> None:
        self.watcher = watcher
        self._pipeline = pipeline
        self._dispatcher = dispatcher
        self._leadership = leadership
        self._notifiers = notifiers
        self._engine = engine
        self._clock = clock
        self._wake = wake
        self.requested = asyncio.Event()  # SIGHUP sets it

    async def run(self, stop: asyncio.Event) -> None:
        """Reload when asked or when the files change, until `stop`."""
        while not stop.is_set():
            await wait_either(self.requested, stop, CHECK_EVERY)
            requested = self.requested.is_set()
            self.requested.clear()
            if stop.is_set() or not (requested or self.watcher.changed_on_disk()):
                continue
            try:
                await asyncio.to_thread(self.apply)
            except Exception:
                log.exception("rules reload failed; the previous rules stay active")

    def apply(self) -> None:
        """Reload the rule files now."""
        result = self.watcher.reload()
        if not result.accepted:
            self._warn(result.problems)
            return
        # Only the leader resets the states of changed rules: a standby's reload must not
        # delete what the leader has just written.
        changed = result.changed_ids if self._leadership.is_leader() else frozenset()
        self._pipeline.replace_rules(index_rules(result.rules.rules), changed)
        self._dispatcher.routes = build_routes(result.rules, self._notifiers)
        self._dispatcher.warnings_to = result.rules.warnings_notify
        log.info(
            "rules reloaded: %d rules (%d changed)",
            len(result.rules.rules),
            len(result.changed_ids),
        )

    def _warn(self, problems: tuple[object, ...]) -> None:
        now = self._clock()
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        event = warning_event(
            WarningKind.RULES,
            ALL_SYMBOLS,
            seq=int(now.timestamp()),
            reason=NotifyReason.FIRED,
            now=now,
            text=f"New rule files refused, the previous rules stay active: {shown}{more}",
        )
        targets = self.watcher.rules.warnings_notify
        if targets and self._leadership.is_leader():  # one warning, not one per replica
            with self._engine.begin() as conn:
                enqueue(conn, [(event, targets)], now=now)
            self._wake.set()
