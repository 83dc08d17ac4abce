"""One poll's worth of work against the store: evaluate, decide, persist, enqueue.

Statuses and the previous snapshot are cached in memory between cycles (only the leader
writes them), so a cycle writes only what changed. If a commit fails, the cache is dropped and
reloaded from the database on the next cycle: the database is the truth. With several
replicas, `fence` runs last in each cycle's transaction, so a replica that lost the lease
commits nothing, and a new leader starts from the database (`invalidate`).

With 100,000 personal alerts the cache holds millions of objects, and one full pass of Python's
cyclic collector over them takes about 0.4 s, stalling whichever cycle it lands in. What a
term loads lives as long as the term, so after a large load the cache is frozen out of the
collector's reach (`gc.freeze`) after the cycle that loaded it, and released again when the
term's cache is dropped. Only a load freezes: freezing often would also freeze the transient
objects of that moment, and leak those that later die in reference cycles.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from gexbot.core.alerts.audience import Audience
from gexbot.core.alerts.cycle import CycleResult, run_rules
from gexbot.core.alerts.evaluate import RuleIndex, index_rules
from gexbot.core.alerts.events import AlertEvent, events_for, is_warning
from gexbot.core.alerts.feed_warnings import FeedContext, WarningResult, feed_warnings
from gexbot.core.alerts.states import NotifyReason, StatusBook
from gexbot.core.language.model import Rule, is_personal
from gexbot.core.market.snapshot import BundleSnapshot
from gexbot.core.personal.grammar import PersonalAlert, alert_id_of, rule_id_of
from gexbot.core.personal.index import PersonalIndex
from gexbot.store.ops import load_audience
from gexbot.store.outbox import enqueue
from gexbot.store.personal import Changes, changes_since, delete_alerts, mark_fired
from gexbot.store.snapshots import load_last_bundle, save_snapshot
from gexbot.store.states import forget_rules, load_statuses, save_statuses

log = logging.getLogger(__name__)

PLATFORMS = ("telegram", "slack", "discord")  # where personal alerts can be made
LARGE_LOAD = 1_000  # alerts or statuses taken in at once, beyond which the cache is frozen


@dataclass(frozen=True, slots=True)
class CycleReport:
    """What one cycle did."""

    result: CycleResult
    enqueued: int  # outbox rows inserted by this cycle
    events: tuple[AlertEvent, ...] = ()  # what this cycle decided to send (rules and warnings)


class Pipeline:
    """Runs cycles for one rule set against one database."""

    def __init__(
        self,
        engine: Engine,
        rules: RuleIndex,
        *,
        fence: Callable[[Connection], None] | None = None,
    ) -> None:
        self._engine = engine
        self.rules = rules  # the rule files'
        self._fence = fence
        # Personal alerts, loaded by what changed since `_revision`; the index picks those a
        # cycle could change, so their cost follows the market, not how many there are.
        self.personal: dict[int, PersonalAlert] = {}
        self._revision = 0
        self._book = PersonalIndex()
        self._counts: dict[str, int] = dict.fromkeys(PLATFORMS, 0)
        self._statuses: StatusBook | None = None
        self._previous: BundleSnapshot | None = None
        # A cycle and a rules reload run in worker threads; this orders them, so a cycle never
        # commits states of a rule under its old definition after the reload forgot them.
        self._ordered = threading.Lock()

    def replace_rules(self, rules: RuleIndex, changed_ids: frozenset[str]) -> None:
        """Swap in reloaded rules; rules that changed definition start from a fresh state.

        Waits for a cycle in progress to commit first.
        """
        with self._ordered:
            with self._engine.begin() as conn:
                forget_rules(conn, [r for r in changed_ids if not is_warning(r)])
            self.rules = rules
            self.invalidate()  # reload: cheaper to re-read than to patch

    def invalidate(self) -> None:
        """Forget the cache: another process may have written since (a new leadership term)."""
        self._statuses, self._previous = None, None
        self.personal, self._revision, self._book = {}, 0, PersonalIndex()
        self._counts = dict.fromkeys(PLATFORMS, 0)
        gc.unfreeze()  # the dropped cache is collectable again

    def personal_counts(self) -> dict[str, int]:
        """The personal alerts evaluated, per platform (every platform named, even at 0)."""
        return dict(self._counts)

    def _take_in(self, changes: Changes | None, statuses: StatusBook) -> int:
        """Take in the personal alerts made, deleted or paused since the last cycle; returns
        how many were (re)loaded."""
        if changes is None:
            return 0
        for gone in changes.gone:
            self._forget(gone, statuses)
        for alert in changes.live:
            if self.personal.get(alert.id) is None:
                self._counts[alert.platform] = self._counts.get(alert.platform, 0) + 1
            self.personal[alert.id] = alert
            self._book.add(alert.rule(), statuses.status(alert.rule_id, alert.request.symbol))
        self._revision = changes.revision
        return len(changes.live)

    def _forget(self, alert_id: int, statuses: StatusBook) -> None:
        """Drop a deleted personal alert from the cache (its state went with it in the store)."""
        if (alert := self.personal.pop(alert_id, None)) is not None:
            self._book.remove(alert.rule_id)
            self._counts[alert.platform] -= 1
        statuses.pop(rule_id_of(alert_id), None)

    def _load(self, now: datetime) -> tuple[StatusBook, BundleSnapshot | None, Audience, int]:
        """The cached state (read once per term), this cycle's mutes, subscriptions and
        personal-alert changes (small reads), and how many statuses and alerts it took in.

        The reads come first and the transaction ends before the index is built: with a
        million alerts that takes seconds, and PostgreSQL ends a session idle in a transaction
        for longer than `PG_IDLE_IN_TRANSACTION_MS`.
        """
        loaded = 0
        with self._engine.connect() as conn:
            if self._statuses is None:
                self._statuses, self._previous = load_statuses(conn), load_last_bundle(conn)
                loaded = len(self._statuses)
            changes = changes_since(conn, self._revision)
            audience = load_audience(conn, now=now)
        loaded += self._take_in(changes, self._statuses)
        return self._statuses, self._previous, audience, loaded

    def run(
        self,
        bundle: BundleSnapshot | None,
        *,
        now: datetime,
        feed: FeedContext | None = None,
        warnings_to: tuple[str, ...] = (),
        commit: bool = True,
    ) -> CycleReport:
        """Evaluate `bundle` (None: the poll failed) and the feed warnings; commit new statuses,
        the snapshot and the outbox rows together (`commit=False`: decide and write nothing,
        for `once --dry-run`)."""
        with self._ordered:
            return self._run(bundle, now=now, feed=feed, warnings_to=warnings_to, commit=commit)

    def _run(
        self,
        bundle: BundleSnapshot | None,
        *,
        now: datetime,
        feed: FeedContext | None,
        warnings_to: tuple[str, ...],
        commit: bool,
    ) -> CycleReport:
        statuses, previous, audience, loaded = self._load(now)
        rules = ChainMap(dict(self.rules.by_id), self._book.rules)
        result = CycleResult((), {})
        if bundle is not None:
            result = run_rules(self.rules, statuses, previous, bundle, now=now, audience=audience)
            picked = index_rules(self._book.candidates(bundle))
            mine = run_rules(picked, statuses, previous, bundle, now=now, audience=audience)
            result = CycleResult(
                (*result.decisions, *mine.decisions), {**result.statuses, **mine.statuses}
            )
        rebased: dict[str, int] = {}
        for d in result.decisions:
            if d.reason is NotifyReason.SILENCED:
                log.info(
                    "%s for %s silenced by a mute", d.observation.rule_id, d.observation.symbol
                )
            elif d.reason is NotifyReason.REBASELINED:
                rebased[d.observation.symbol] = rebased.get(d.observation.symbol, 0) + 1
        for sym, n in rebased.items():
            log.info(
                "%s: the levels' source changed; %d rule states re-baselined, not alerted", sym, n
            )
        events = events_for(result.decisions, rules, now=now, bundle=bundle, audience=audience)
        fired, spent = _personal_outcomes(result, rules)
        changed = dict(result.statuses)
        warnings = WarningResult()
        if feed is not None:
            warnings = feed_warnings(
                statuses,
                previous=previous,
                bundle=bundle,
                now=now,
                feed=feed,
            )
            changed.update(warnings.statuses)
            if warnings.events and not warnings_to:
                log.warning(
                    "feed warning with no `warnings` route in the rules: %s",
                    "; ".join(e.message or e.kind for e in warnings.events),
                )
            events += [(e, warnings_to) for e in warnings.events if warnings_to]
        if not commit:
            self._book.full = True  # it saw this bundle, but no status changed with it
            return CycleReport(result, 0, tuple(e for e, _ in events))
        try:
            with self._engine.begin() as conn:
                save_statuses(conn, changed)
                if bundle is not None:
                    save_snapshot(conn, bundle)
                enqueued = enqueue(conn, events, now=now)
                mark_fired(conn, fired, now=now)
                delete_alerts(conn, spent, now=now)  # `once`: deleted by the alert it sent
                if self._fence is not None:
                    self._fence(conn)  # last: it locks the lease row until the commit
        except Exception:
            self.invalidate()
            raise
        statuses.apply(changed)
        self._book.update(
            (rule_id, st) for (rule_id, _), st in changed.items() if is_personal(rule_id)
        )
        for alert_id in spent:
            self._forget(alert_id, statuses)
        if bundle is not None:
            self._previous = bundle
        if loaded >= LARGE_LOAD:  # after the cycle: its first statuses are the cache too
            gc.collect()  # not to freeze garbage
            gc.freeze()
        return CycleReport(result, enqueued, tuple(e for e, _ in events))


def _personal_outcomes(
    result: CycleResult, rules: Mapping[str, Rule]
) -> tuple[list[int], list[int]]:
    """Personal alerts that sent a message this cycle, and those of them set to fire `once`."""
    fired, spent = [], []
    for d in result.alerts:
        rule_id = d.observation.rule_id
        alert_id = alert_id_of(rule_id) if is_personal(rule_id) else None
        if alert_id is not None:
            fired.append(alert_id)
            if rules[rule_id].once and d.reason is NotifyReason.FIRED:
                spent.append(alert_id)
    return fired, spent
