"""The poll loop: while this replica leads, poll the bundle on the refresh model's deadlines,
run one cycle when the data changed, and back off after failures. A failing cycle is logged
with its traceback and counted; the next one runs."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from gexbot.adapters.backquant import FetchError
from gexbot.adapters.source import LevelsSource
from gexbot.core.alerts.events import is_warning
from gexbot.core.alerts.feed_warnings import FeedContext
from gexbot.core.language.model import is_personal
from gexbot.core.market.includes import required_includes
from gexbot.core.market.poll_failure import delay_after_failure
from gexbot.core.market.schedule import RefreshModel, first_poll_after_takeover, next_poll
from gexbot.core.market.snapshot import BundleSnapshot, SymbolStatus
from gexbot.loops.cycle import CycleReport, Pipeline
from gexbot.loops.health import Metrics
from gexbot.loops.latest import LatestLevels
from gexbot.loops.leadership import Leadership, NotLeader, Takeover
from gexbot.loops.rules import RulesWatcher
from gexbot.loops.waits import Changes, sleep_or_stop
from gexbot.store.snapshots import load_last_bundle

log = logging.getLogger("gexbot")

HEARTBEAT_EVERY = 60.0  # with quiet cycles (the demo), one "still polling" line this often
STANDBY_CHECK_EVERY = 0.1  # how often a standby looks at its role (the elector is the clock)


@dataclass(frozen=True, slots=True, kw_only=True)
class PollConfig:
    """What the poll loop needs of the settings."""

    symbols: Sequence[str]
    exchanges: Sequence[str] | None
    interval: float  # seconds, BackQuant's refresh
    missing_after: float
    stale_after: float
    quiet: bool  # the demo logs only the cycles where something happened


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


class PollLoop:
    """Polls, evaluates and commits cycles while this replica leads."""

    def __init__(
        self,
        config: PollConfig,
        *,
        client: LevelsSource,
        watcher: RulesWatcher,
        pipeline: Pipeline,
        leadership: Leadership,
        latest: LatestLevels,
        metrics: Metrics,
        engine: Engine,
        clock: Callable[[], datetime],
        rng: random.Random,
        wake: asyncio.Event,
        changes: Changes,
    ) -> None:
        self._config = config
        self._client = client
        self._watcher = watcher
        self._pipeline = pipeline
        self._leadership = leadership
        self._latest = latest
        self._metrics = metrics
        self._engine = engine
        self._clock = clock
        self._rng = rng
        self._wake = wake
        self._changes = changes
        self.state = PollState(started_at=clock())
        self.model = RefreshModel(interval=config.interval)

    async def once(self, *, dry_run: bool = False) -> tuple[CycleReport | None, bool]:
        """One poll and, when the data changed, one evaluation. Returns (report, fresh)."""
        now = self._clock()
        includes = required_includes(self._watcher.rules.rules)
        bundle: BundleSnapshot | None = None
        t0 = time.perf_counter()
        try:
            bundle = await self._client.bundle(
                self._config.symbols, includes, self._config.exchanges
            )
        except FetchError as exc:
            self._metrics.polls.labels(outcome=exc.kind.value).inc()
            self.state.failures += 1
            first = self.state.last_failure is None or self.state.last_failure.kind != exc.kind
            self.state.last_failure = exc
            (log.warning if first else log.debug)("poll failed: %s", exc)
        else:
            self._metrics.polls.labels(outcome="ok").inc()
            self.state.failures = 0
            self.state.last_failure = None
            self.state.last_success = now
        self._metrics.upstream_latency.observe(time.perf_counter() - t0)
        rl = self._client.rate_limit
        if rl.remaining is not None:
            self._metrics.rate_remaining.set(rl.remaining)
        if rl.quota_remaining is not None:
            self._metrics.quota_remaining.set(rl.quota_remaining)
        fresh = False
        if bundle is not None:
            self._latest.record(bundle)
            fresh = self.model.observe(
                [s.computed_at for s in bundle.symbols.values()],
                asked_at=now,
                answered_at=self._clock(),
            )
            statuses = {s: snap.status for s, snap in bundle.symbols.items()}
            self._log_transitions(statuses)
            for status in SymbolStatus:
                self._metrics.symbols.labels(status=status.value).set(
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
    ) -> CycleReport:
        failure = self.state.last_failure
        config = self._config
        feed = FeedContext(
            started_at=self.state.started_at,
            interval=config.interval,
            missing_after=config.missing_after,
            stale_after=config.stale_after,
            last_success=self.state.last_success,
            failure_kind=failure.kind.value if failure else None,
            failure_message=str(failure) if failure else None,
        )
        t0 = time.perf_counter()
        report = await asyncio.to_thread(
            self._pipeline.run,
            bundle,
            now=now,
            feed=feed,
            warnings_to=self._watcher.rules.warnings_notify,
            commit=not dry_run,
        )
        self.state.cycles += 1
        self._metrics.cycle_seconds.observe(time.perf_counter() - t0)
        for decision in report.result.decisions:
            rule_id = decision.observation.rule_id
            self._metrics.alerts.labels(
                # one series for every personal alert: their ids would be unbounded labels
                rule="personal" if is_personal(rule_id) else rule_id,
                reason=decision.reason.value,
            ).inc()
        for platform, n in self._pipeline.personal_counts().items():
            self._metrics.personal_alerts.labels(platform=platform).set(n)
        served = 0 if bundle is None else len(bundle.by_status(SymbolStatus.OK))
        total = len(config.symbols)
        alerts = sum(1 for e in report.events if not is_warning(e.rule_id))
        quiet = config.quiet and not report.events and bundle is not None
        (log.debug if quiet else log.info)(
            "cycle %d: %s, %d/%d symbols ok, %d alert(s), %d warning(s), %.0f ms",
            self.state.cycles,
            "ok"
            if bundle is not None
            else f"poll failed ({failure.kind.value if failure else '?'})",
            served,
            total,
            alerts,
            len(report.events) - alerts,
            (time.perf_counter() - t0) * 1000,
        )
        self._heartbeat(now, quiet=quiet, served=served, total=total)
        if report.enqueued:
            self._wake.set()
        self._changes.bump()
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

    def delay_after(self, fresh: bool) -> float:
        """Seconds until the next poll: the refresh model, or backoff after a failure."""
        now = self._clock()
        failure = self.state.last_failure
        if failure is None:
            return max(0.05, (next_poll(self.model, now=now, fresh=fresh) - now).total_seconds())
        return delay_after_failure(
            failure.kind,
            retry_after=failure.retry_after,
            failures=self.state.failures,
            interval=self._config.interval,
            rng=self._rng,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Poll on deadlines until `stop` while leading; a failing cycle never ends the loop."""
        lead = self._leadership
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
                _, fresh = await self.once()
            except NotLeader as exc:
                log.warning("cycle rolled back, nothing sent from it: %s", exc)
                continue
            except Exception:
                self._metrics.cycle_errors.inc()
                log.exception("cycle failed; the next one runs as scheduled")
            await sleep_or_stop(stop, self.delay_after(fresh))
        await lead.release()  # after the last cycle, so it could still commit

    def _prepare_takeover(self, takeover: Takeover) -> float:
        """A new term: forget cached state and learn where the last leader stopped; returns
        seconds to wait before the first poll (none unless it already polled this window)."""
        self._pipeline.invalidate()
        self.state.last_statuses = None
        # A fresh cadence model per term: what the last leader saw only places the current
        # refresh window, it is no observation of ours (seeding the model with it once made
        # every new leader "learn" a period as long as the outage).
        self.model = RefreshModel(interval=self._config.interval)
        with self._engine.connect() as conn:
            stored = load_last_bundle(conn)
        stamps = [s.computed_at for s in stored.symbols.values()] if stored is not None else []
        now = self._clock()
        first = first_poll_after_takeover(
            now=now,
            previous_poll=takeover.previous_poll,
            last_stamp=max((c for c in stamps if c is not None), default=None),
            interval=self._config.interval,
        )
        wait = max(0.0, (first - now).total_seconds())
        log.info(
            "leading from term %d; first poll %s",
            takeover.term,
            "now" if wait == 0 else f"in {wait:.1f}s (the last leader polled this refresh)",
        )
        return wait
