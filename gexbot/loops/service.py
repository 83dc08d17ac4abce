"""The running bot: poll, evaluate/decide/persist, deliver, reload rules, serve health.

All loops share one event loop under a TaskGroup. With several replicas on PostgreSQL only
the leader (gexbot/loops/leadership.py) polls, evaluates and commits cycles; every replica delivers.
SIGINT/SIGTERM only set `stop`: the current cycle finishes, due deliveries are flushed within a
deadline, and the process exits 0. An exception in one cycle is logged with its traceback and
counted; the next cycle runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import Engine

from gexbot.adapters.backquant import BackQuantClient, FetchError
from gexbot.adapters.notify import Notifier
from gexbot.charts.cache import ChartCache
from gexbot.core.alert import NotifyReason
from gexbot.core.evaluate import index_rules
from gexbot.core.events import ALL_SYMBOLS, WarningKind, is_warning, warning_event
from gexbot.core.feed_warnings import FeedContext
from gexbot.core.includes import required_includes
from gexbot.core.poll_failure import delay_after_failure
from gexbot.core.rules import is_personal
from gexbot.core.schedule import RefreshModel, first_poll_after_takeover, next_poll
from gexbot.core.snapshot import BundleSnapshot, SymbolStatus
from gexbot.loops.cycle import CycleReport, Pipeline
from gexbot.loops.deliver import Dispatcher, build_routes
from gexbot.loops.health import HealthServer, Metrics
from gexbot.loops.leadership import Leadership, NotLeader, Role, Takeover
from gexbot.loops.rules import RulesWatcher
from gexbot.loops.waits import Changes, sleep_or_stop
from gexbot.settings import Settings
from gexbot.store.outbox import enqueue
from gexbot.store.snapshots import load_last_bundle

log = logging.getLogger("gexbot")

FLUSH_DEADLINE = 5.0  # seconds allowed to deliver what is due after a stop signal
HEARTBEAT_EVERY = 60.0  # with quiet cycles (the demo), one "still polling" line this often
RULES_CHECK_EVERY = 2.0
STANDBY_CHECK_EVERY = 0.1  # how often a standby looks at its role (the elector is the clock)


@dataclass(slots=True)
class PollState:
    """What the poll loop remembers between cycles."""

    started_at: datetime
    last_success: datetime | None = None
    last_failure: FetchError | None = None
    failures: int = 0
    last_statuses: dict[str, SymbolStatus] | None = None
    cycles: int = 0
    quiet_since: datetime | None = None  # the last cycle line logged, when cycles are quiet
    quiet_cycles: int = 0  # cycles not logged since then


class LatestLevels:
    """The newest levels for chat replies and the console: this process's last poll when it
    leads, else the leader's last stored snapshot (standbys do not poll)."""

    def __init__(self, engine: Engine, leadership: Leadership) -> None:
        self._engine = engine
        self._leadership = leadership
        self.bundle: BundleSnapshot | None = None  # this process's last good poll

    def record(self, bundle: BundleSnapshot) -> None:
        """Remember a good poll."""
        self.bundle = bundle

    def __call__(self) -> BundleSnapshot | None:
        """The newest bundle this replica can see."""
        if self._leadership.is_leader() and self.bundle is not None:
            return self.bundle
        with self._engine.connect() as conn:
            return load_last_bundle(conn) or self.bundle


ChatLoop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
HttpRoutes = Callable[[web.Application], None]


class Service:
    """One running gexbot process: every loop, under one TaskGroup.

    Every collaborator is handed in (`gexbot.app` builds them): the service only runs loops.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine,
        client: BackQuantClient,
        watcher: RulesWatcher,
        notifiers: dict[str, Notifier],
        pipeline: Pipeline,
        dispatcher: Dispatcher,
        charts: ChartCache,
        leadership: Leadership,
        latest: LatestLevels,
        metrics: Metrics,
        rng: random.Random,
        clock: Callable[[], datetime],
        quiet_cycles: bool = False,
        chat_loops: Sequence[ChatLoop] = (),
        http_routes: Sequence[HttpRoutes] = (),
    ) -> None:
        self.settings = settings
        self.leadership = leadership
        self._engine = engine
        self._client = client
        self.watcher = watcher
        self._notifiers = notifiers
        self._clock = clock
        self._rng = rng
        # Alerts with `chart: true` and chat `/levels` share one chart per symbol and refresh.
        self.charts = charts
        self.pipeline = pipeline
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.latest = latest
        self.state = PollState(started_at=clock())
        self.model = RefreshModel(interval=settings.poll_interval)
        self.wake = asyncio.Event()
        self.changes = Changes()  # cycles and deliveries, for the console's live view
        self.reload_requested = asyncio.Event()
        self._quiet = quiet_cycles  # the demo logs only cycles where something happened
        self.http_routes = list(http_routes)
        self.chat_loops = list(chat_loops)

    async def close_notifiers(self) -> None:
        """Close every notifier's connections (best effort: the process is ending)."""
        for notifier in self._notifiers.values():
            with contextlib.suppress(Exception):
                await notifier.close()

    # -- health -----------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, object]]:
        """Leader: healthy while the last successful poll is younger than 3 intervals.
        Standby: healthy while it can read the lease (it is ready to take over)."""
        role = self.leadership.describe()
        if role["role"] != Role.LEADER:
            ok = role.get("database_error") is None
            leader = role.get("leader")
            reason = f"standby; leader is {leader}" if leader else "standby; no leader right now"
            if not ok:
                reason = f"standby cannot reach the database ({role['database_error']})"
            return ok, {"status": "ok" if ok else "down", "reason": reason, **role}
        ok, body = self._poll_health()
        return ok, {**body, **role, "personal_alerts": self.pipeline.personal_counts()}

    def status(self) -> dict[str, object]:
        """`/status`: the role, the leader, and this process's polling record."""
        last = self.latest.bundle
        return {
            **self.leadership.describe(),
            "cycles": self.state.cycles,
            "last_success": self.state.last_success,
            "started_at": self.state.started_at,
            # our clock vs upstream's: a large gap between the two is clock skew, not lag
            "last_received_at": last.received_at if last else None,
            "last_upstream_at": last.upstream_at if last else None,
        }

    def _poll_health(self) -> tuple[bool, dict[str, object]]:
        now = self._clock()
        limit = 3 * self.settings.poll_interval
        last = self.state.last_success
        age = (now - last).total_seconds() if last else None
        ok = age is not None and age <= limit
        reason = "ok" if ok else ("no successful poll yet" if last is None else "feed down")
        if not ok and self.state.last_failure is not None:
            reason += f": {self.state.last_failure}"
        return ok, {
            "status": "ok" if ok else "down",
            "reason": reason,
            "last_success": last,
            "age_seconds": age,
            "limit_seconds": limit,
            "rate_limit_remaining": self._client.rate_limit.remaining,
        }

    # -- the poll cycle -------------------------------------------------------------------

    async def poll_once(self, *, dry_run: bool = False) -> tuple[CycleReport | None, bool]:
        """One poll and, when the data changed, one evaluation. Returns (report, fresh)."""
        now = self._clock()
        rules = self.watcher.rules
        includes = required_includes(rules.rules)
        bundle: BundleSnapshot | None = None
        t0 = time.perf_counter()
        try:
            bundle = await self._client.bundle(
                self.settings.symbols, includes, self.settings.exchanges
            )
        except FetchError as exc:
            self.metrics.polls.labels(outcome=exc.kind.value).inc()
            self.state.failures += 1
            first = self.state.last_failure is None or self.state.last_failure.kind != exc.kind
            self.state.last_failure = exc
            (log.warning if first else log.debug)("poll failed: %s", exc)
        else:
            self.metrics.polls.labels(outcome="ok").inc()
            self.state.failures = 0
            self.state.last_failure = None
            self.state.last_success = now
        self.metrics.upstream_latency.observe(time.perf_counter() - t0)
        rl = self._client.rate_limit
        if rl.remaining is not None:
            self.metrics.rate_remaining.set(rl.remaining)
        if rl.quota_remaining is not None:
            self.metrics.quota_remaining.set(rl.quota_remaining)
        fresh = False
        if bundle is not None:
            self.latest.record(bundle)
            fresh = self.model.observe(
                [s.computed_at for s in bundle.symbols.values()],
                asked_at=now,
                answered_at=self._clock(),
            )
            statuses = {s: snap.status for s, snap in bundle.symbols.items()}
            self._log_transitions(statuses)
            for status in SymbolStatus:
                self.metrics.symbols.labels(status=status.value).set(
                    sum(1 for v in statuses.values() if v is status)
                )
            changed = statuses != self.state.last_statuses
            self.state.last_statuses = statuses
            if not fresh and not changed and self.state.cycles > 0:
                log.debug("no new data upstream (computed_at unchanged); nothing to evaluate")
                return None, False
        report = await self._evaluate(bundle, now, dry_run=dry_run)
        return report, fresh

    async def _evaluate(
        self, bundle: BundleSnapshot | None, now: datetime, *, dry_run: bool
    ) -> CycleReport | None:
        failure = self.state.last_failure
        feed = FeedContext(
            started_at=self.state.started_at,
            interval=self.settings.poll_interval,
            missing_after=self.settings.missing_after,
            stale_after=self.settings.stale_after,
            last_success=self.state.last_success,
            failure_kind=failure.kind.value if failure else None,
            failure_message=str(failure) if failure else None,
        )
        warnings_to = self.watcher.rules.warnings_notify
        t0 = time.perf_counter()
        report = await asyncio.to_thread(
            self.pipeline.run,
            bundle,
            now=now,
            feed=feed,
            warnings_to=warnings_to,
            commit=not dry_run,
        )
        self.state.cycles += 1
        self.metrics.cycle_seconds.observe(time.perf_counter() - t0)
        for decision in report.result.decisions:
            rule_id = decision.observation.rule_id
            self.metrics.alerts.labels(
                # one series for every personal alert: their ids would be unbounded labels
                rule="personal" if is_personal(rule_id) else rule_id,
                reason=decision.reason.value,
            ).inc()
        for platform, n in self.pipeline.personal_counts().items():
            self.metrics.personal_alerts.labels(platform=platform).set(n)
        served = 0 if bundle is None else len(bundle.by_status(SymbolStatus.OK))
        total = len(self.settings.symbols)
        alerts = sum(1 for e in report.events if not is_warning(e.rule_id))
        warnings = len(report.events) - alerts
        quiet = self._quiet and not report.events and bundle is not None
        (log.debug if quiet else log.info)(
            "cycle %d: %s, %d/%d symbols ok, %d alert(s), %d warning(s), %.0f ms",
            self.state.cycles,
            "ok"
            if bundle is not None
            else f"poll failed ({failure.kind.value if failure else '?'})",
            served,
            total,
            alerts,
            warnings,
            (time.perf_counter() - t0) * 1000,
        )
        self._heartbeat(now, quiet=quiet, served=served, total=total)
        if report.enqueued:
            self.wake.set()
        self.changes.bump()
        return report

    def _heartbeat(self, now: datetime, *, quiet: bool, served: int, total: int) -> None:
        """Quiet cycles are not logged one by one; a line every HEARTBEAT_EVERY seconds says
        the bot is still polling."""
        state = self.state
        if not quiet or state.quiet_since is None:
            state.quiet_since, state.quiet_cycles = now, 0
            return
        state.quiet_cycles += 1
        if (now - state.quiet_since).total_seconds() >= HEARTBEAT_EVERY:
            log.info(
                "still polling: %d quiet cycle(s) since %s, %d/%d symbols ok",
                state.quiet_cycles,
                state.quiet_since.strftime("%H:%M:%S"),
                served,
                total,
            )
            state.quiet_since, state.quiet_cycles = now, 0

    def _log_transitions(self, statuses: dict[str, SymbolStatus]) -> None:
        before = self.state.last_statuses or {}
        for sym, status in statuses.items():
            if before.get(sym, SymbolStatus.OK) is not status:
                log.info("%s is now %s", sym, status.value)

    def _delay_after(self, fresh: bool) -> float:
        """Seconds until the next poll: the refresh model, or backoff after a failure."""
        now = self._clock()
        interval = self.settings.poll_interval
        failure = self.state.last_failure
        if failure is None:
            return max(0.05, (next_poll(self.model, now=now, fresh=fresh) - now).total_seconds())
        return delay_after_failure(
            failure.kind,
            retry_after=failure.retry_after,
            failures=self.state.failures,
            interval=interval,
            rng=self._rng,
        )

    # -- loops ----------------------------------------------------------------------------------

    async def poll_loop(self, stop: asyncio.Event) -> None:
        """Poll on deadlines until `stop` while leading; a failing cycle never ends the loop."""
        lead = self.leadership
        while not stop.is_set():
            if not lead.is_leader():
                await sleep_or_stop(stop, STANDBY_CHECK_EVERY)
                continue
            takeover = lead.take_over()
            if takeover is not None:
                delay = await asyncio.to_thread(self._prepare_takeover, takeover)
                await sleep_or_stop(stop, delay)
                continue
            if not await lead.before_poll():
                continue
            fresh = False
            try:
                _, fresh = await self.poll_once()
            except NotLeader as exc:
                log.warning("cycle rolled back, nothing sent from it: %s", exc)
                continue
            except Exception:
                self.metrics.cycle_errors.inc()
                log.exception("cycle failed; the next one runs as scheduled")
            await sleep_or_stop(stop, self._delay_after(fresh))
        await lead.release()  # after the last cycle, so it could still commit

    def _prepare_takeover(self, takeover: Takeover) -> float:
        """A new term: forget cached state and learn where the last leader stopped; returns
        seconds to wait before the first poll (none unless it already polled this window)."""
        self.pipeline.invalidate()
        self.state.last_statuses = None
        # A fresh cadence model per term: what the last leader saw only places the current
        # refresh window, it is no observation of ours (seeding the model with it once made
        # every new leader "learn" a period as long as the outage).
        self.model = RefreshModel(interval=self.settings.poll_interval)
        with self._engine.connect() as conn:
            stored = load_last_bundle(conn)
        stamps = [s.computed_at for s in stored.symbols.values()] if stored is not None else []
        now = self._clock()
        first = first_poll_after_takeover(
            now=now,
            previous_poll=takeover.previous_poll,
            last_stamp=max((c for c in stamps if c is not None), default=None),
            interval=self.settings.poll_interval,
        )
        wait = max(0.0, (first - now).total_seconds())
        log.info(
            "leading from term %d; first poll %s",
            takeover.term,
            "now" if wait == 0 else f"in {wait:.1f}s (the last leader polled this refresh)",
        )
        return wait

    async def dispatch_loop(self, stop: asyncio.Event) -> None:
        """Deliver whenever woken (new rows) and every second (retries coming due)."""
        while not stop.is_set():
            await self._dispatch()
            waiter = asyncio.ensure_future(self.wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            self.wake.clear()
        # Flush what is due now, within a deadline, then leave the rest for the next start.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._dispatch(), timeout=FLUSH_DEADLINE)

    async def _dispatch(self) -> None:
        try:
            stats = await self.dispatcher.run_once()
        except Exception:
            log.exception("dispatch pass failed; retrying shortly")
            return
        for status, ids in (("sent", stats.sent), ("retry", stats.retried), ("dead", stats.dead)):
            if ids:
                self.metrics.deliveries.labels(channel="all", status=status).inc(len(ids))
        if stats.sent or stats.retried or stats.dead:
            self.changes.bump()

    async def rules_loop(self, stop: asyncio.Event) -> None:
        """Reload rules on SIGHUP or when the files change; refuse invalid versions."""
        while not stop.is_set():
            waiter = asyncio.ensure_future(self.reload_requested.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait(
                {waiter, stopper}, timeout=RULES_CHECK_EVERY, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            stopper.cancel()
            requested = self.reload_requested.is_set()
            self.reload_requested.clear()
            if stop.is_set() or not (requested or self.watcher.changed_on_disk()):
                continue
            try:
                await asyncio.to_thread(self.apply_reload)
            except Exception:
                log.exception("rules reload failed; the previous rules stay active")

    async def _warm_charts(self) -> None:
        try:
            await self.charts.warm_up()
        except Exception as exc:  # noqa: BLE001 - charts are extra: the first is just slower
            log.warning("chart warm-up failed (%s)", type(exc).__name__)

    def apply_reload(self) -> None:
        """Reload the rule files now (also used by tests)."""
        result = self.watcher.reload()
        if not result.accepted:
            self._warn_rules(result.problems)
            return
        # Only the leader resets the states of changed rules: a standby's reload must not
        # delete what the leader has just written.
        changed = result.changed_ids if self.leadership.is_leader() else frozenset()
        self.pipeline.replace_rules(index_rules(result.rules.rules), changed)
        self.dispatcher.routes = build_routes(result.rules, self._notifiers)
        self.dispatcher.warnings_to = result.rules.warnings_notify
        log.info(
            "rules reloaded: %d rules (%d changed)",
            len(result.rules.rules),
            len(result.changed_ids),
        )

    def _warn_rules(self, problems: tuple[object, ...]) -> None:
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
        if targets and self.leadership.is_leader():  # one warning, not one per replica
            with self._engine.begin() as conn:
                enqueue(conn, [(event, targets)], now=now)
            self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Every loop, until `stop`."""
        server = None
        if self.settings.http_port:
            server = HealthServer(
                self.metrics, self.health, status=self.status, routes=self.http_routes
            )
            url = await server.start(self.settings.http_host, self.settings.http_port)
            log.info("health and metrics on %s/healthz and %s/metrics", url, url)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.leadership.run(stop))
                tasks.create_task(self.poll_loop(stop))
                tasks.create_task(self.dispatch_loop(stop))
                tasks.create_task(self.rules_loop(stop))
                if self.chat_loops or any(r.chart for r in self.watcher.rules.rules):
                    tasks.create_task(self._warm_charts())
                for chat_loop in self.chat_loops:
                    tasks.create_task(chat_loop(stop))
        finally:
            if server is not None:
                await server.stop()
            await self.close_notifiers()
            await self.charts.close()
