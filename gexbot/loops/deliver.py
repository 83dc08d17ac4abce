"""The dispatcher: claims due outbox rows, sends them per destination, marks each outcome.

Destinations are served concurrently, each in its own task, so a rate-limited or slow channel
never holds up another. Rows of one cycle for one destination go out as one message that says
how many alerts it carries.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine

from gexbot.adapters.notify import DeliveryError, Notifier
from gexbot.core.alerts.events import WarningKind, is_warning, warning_event
from gexbot.core.alerts.states import NotifyReason
from gexbot.core.language.model import Channel, ChannelKind, RuleSet, webhook_env
from gexbot.core.market.backoff import backoff_delay
from gexbot.core.present.render import render
from gexbot.store.buttons import button_token
from gexbot.store.outbox import (
    OutboxRow,
    claim,
    enqueue,
    mark_dead,
    mark_retry,
    mark_sent,
    thread_root,
)
from gexbot.store.personal import pause_chat

log = logging.getLogger(__name__)

#: What belongs in the thread of the alert that opened its episode.
_FOLLOW_UPS = frozenset({NotifyReason.REPEAT, NotifyReason.RESOLVED})

__all__ = ["DeliveryError", "DispatchPolicy", "DispatchStats", "Dispatcher", "Route"]


@dataclass(frozen=True, slots=True)
class Route:
    """Where a channel name delivers: its notifier (None when the platform has no token)."""

    channel: Channel
    notifier: Notifier | None


@dataclass(slots=True)
class DispatchStats:
    """Outcomes of one dispatch pass (row ids)."""

    sent: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    """Lease, attempts, backoff and grouping for deliveries."""

    lease: float  # seconds a claim holds (GEXBOT_DELIVERY_LEASE)
    max_attempts: int = 8
    base_delay: float = 2.0
    max_delay: float = 600.0
    batch: int = 1000
    group: bool = True
    #: Platforms whose follow-ups (reminders, resolutions) go in the first message's thread.
    threads: frozenset[str] = frozenset({"slack", "telegram", "discord"})
    #: Platforms whose alerts carry buttons (each alert then goes as a message of its own).
    buttons: frozenset[str] = frozenset()


class Dispatcher:
    """Delivers the outbox through the notifiers of `routes`."""

    def __init__(
        self,
        engine: Engine,
        routes: dict[str, Route],
        *,
        clock: Callable[[], datetime],
        warnings_to: Sequence[str] = (),
        policy: DispatchPolicy,
        rng: random.Random,
        notifiers: dict[str, Notifier] | None = None,
        charts: Callable[[str], Awaitable[bytes | None]] | None = None,
        monotonic: Callable[[], float],
        fingerprint: Callable[[str, Connection], str | None] | None = None,
    ) -> None:
        self._fingerprint = fingerprint  # a rule's current definition, for its buttons
        self._engine = engine
        self._monotonic = monotonic
        self.routes = routes
        self.notifiers = notifiers or {}
        self._charts = charts
        self._clock = clock
        self.warnings_to = tuple(warnings_to)
        self._policy = policy
        self._rng = rng
        self._reported: set[str] = set()

    async def run_once(self) -> DispatchStats:
        """Claim what is due and deliver it; returns what happened to each row."""
        policy = self._policy
        now = self._clock()

        def _claim() -> list[OutboxRow]:
            with self._engine.begin() as conn:
                return claim(conn, now=now, lease=policy.lease, limit=policy.batch)

        # The claim is ours until `lease` on the database rows; locally we stop a little
        # earlier (host clocks drift), so a replica frozen mid-batch never sends, on waking,
        # rows another replica has claimed since.
        deadline = self._monotonic() + policy.lease - min(5.0, 0.2 * policy.lease)
        rows = await asyncio.to_thread(_claim)
        stats = DispatchStats()
        by_channel: dict[str, list[OutboxRow]] = defaultdict(list)
        for row in rows:
            by_channel[row.channel].append(row)
        async with asyncio.TaskGroup() as tasks:
            for channel, mine in by_channel.items():
                tasks.create_task(self._deliver_channel(channel, mine, stats, deadline))
        return stats

    def _messages(self, route: Route | None, rows: list[OutboxRow]) -> list[list[OutboxRow]]:
        notifier = route.notifier if route is not None else None
        if not self._policy.group or (notifier is not None and not notifier.groups):
            return [[r] for r in rows]
        # One message per cycle: rows created at the same instant came from the same cycle.
        # A follow-up in a thread, and an alert with buttons, go alone: each has its own.
        groups: dict[object, list[OutboxRow]] = {}
        for row in rows:
            alone = self._threaded(route, row) or self._buttoned(route, row)
            groups.setdefault(("alone", row.id) if alone else row.event.at, []).append(row)
        return list(groups.values())

    def _threaded(self, route: Route | None, row: OutboxRow) -> bool:
        """True when `row` is a follow-up to send in its alert's thread on this route."""
        return (
            route is not None
            and route.channel.kind.value in self._policy.threads
            and row.event.reason in _FOLLOW_UPS
        )

    def _buttoned(self, route: Route | None, row: OutboxRow) -> bool:
        """True when `row` is an alert that carries buttons on this route."""
        return (
            self._fingerprint is not None
            and route is not None
            and route.channel.kind.value in self._policy.buttons
            and not is_warning(row.event.rule_id)
        )

    async def _placement(
        self, route: Route | None, message: list[OutboxRow]
    ) -> tuple[str | None, str | None]:
        """Where a lone row goes and what it carries, in one read of the database: the message
        id a follow-up replies to, and the token of an alert's buttons (made on its first
        send, the same on a retry; none once its rule is gone). (None, None) for the rest."""
        if len(message) != 1 or route is None:
            return None, None
        row = message[0]
        threaded, buttoned = self._threaded(route, row), self._buttoned(route, row)
        if not threaded and not buttoned:
            return None, None
        fingerprint, now = self._fingerprint, self._clock()

        def _do() -> tuple[str | None, str | None]:
            with self._engine.begin() as conn:
                reply_to = thread_root(conn, row) if threaded else None
                current = fingerprint(row.event.rule_id, conn) if buttoned and fingerprint else None
                if current is None:
                    return reply_to, None
                token = button_token(
                    conn,
                    outbox_id=row.id,
                    alert_key=row.alert_key,
                    rule_id=row.event.rule_id,
                    symbol=row.event.symbol,
                    fingerprint=current,
                    platform=route.channel.kind.value,
                    chat_id=route.channel.target,
                    now=now,
                )
                return reply_to, token

        return await asyncio.to_thread(_do)

    def route_for(self, channel: str) -> Route | None:
        """The route of a rule-file channel, or of a subscribed chat (`telegram:123`)."""
        route = self.routes.get(channel)
        if route is not None or ":" not in channel:
            return route
        platform, _, chat = channel.partition(":")
        try:
            kind = ChannelKind(platform)
        except ValueError:
            return None
        notifier = next(
            (r.notifier for r in self.routes.values() if r.channel.kind is kind and r.notifier),
            self.notifiers.get(platform),
        )
        return Route(Channel(channel, kind, chat), notifier)

    async def _deliver_channel(
        self, channel: str, rows: list[OutboxRow], stats: DispatchStats, deadline: float
    ) -> None:
        route = self.route_for(channel)
        for message in self._messages(route, rows):
            if self._monotonic() >= deadline:
                log.info(
                    "claim on %d message(s) to %s lapsed before sending; they will be claimed "
                    "again",
                    len(message),
                    channel,
                )
                continue
            reply_to, buttons = await self._placement(route, message)
            outcome = await self._send(route, channel, message, reply_to, buttons)
            if not isinstance(outcome, DeliveryError):
                stats.sent.extend(await self._mark_sent(channel, message, provider_id=outcome))
                await self._attach_charts(route, message)
                continue
            attempts = max(r.attempts for r in message)
            if outcome.permanent or attempts >= self._policy.max_attempts:
                log.error("delivery to %s failed for good: %s", channel, outcome)
                stats.dead.extend(await self._mark_dead(channel, message, error=str(outcome)))
                if outcome.unreachable and ":" in channel:
                    await self._pause_chat(channel, str(outcome))
                await self._warn_dead(channel, route, str(outcome))
                continue
            delay = outcome.retry_after
            if delay is None:
                delay = backoff_delay(
                    attempts,
                    base=self._policy.base_delay,
                    cap=self._policy.max_delay,
                    rng=self._rng,
                )
            log.warning("delivery to %s failed (%s); retry in %.0fs", channel, outcome, delay)
            due = self._clock() + timedelta(seconds=delay)
            stats.retried.extend(
                await self._mark_retry(channel, message, due_at=due, error=str(outcome))
            )

    async def _send(
        self,
        route: Route | None,
        channel: str,
        rows: list[OutboxRow],
        reply_to: str | None,
        buttons: str | None = None,
    ) -> str | DeliveryError | None:
        if route is None:
            return DeliveryError(
                f"unknown channel `{channel}` (not in the rule files)", permanent=True
            )
        if route.notifier is None:
            kind, target = route.channel.kind, route.channel.target
            var = (
                webhook_env(target, "url")
                if kind is ChannelKind.WEBHOOK
                else f"GEXBOT_{kind.value.upper()}_BOT_TOKEN"
            )
            return DeliveryError(f"{var} is not set", permanent=True)
        if any(r.attempts > self._policy.max_attempts for r in rows):
            return DeliveryError(
                f"gave up after {self._policy.max_attempts} attempts", permanent=True
            )
        try:
            items = [render(r.event) for r in rows]
            return await route.notifier.send(
                route.channel.target, items, reply_to=reply_to, buttons=buttons
            )
        except DeliveryError as exc:
            return exc
        except Exception as exc:  # a notifier bug must not stop delivery of the other rows
            log.exception("unexpected error delivering to %s", channel)
            # Only the type: a foreign message may carry a token.
            return DeliveryError(f"unexpected {type(exc).__name__}")

    async def _attach_charts(self, route: Route | None, rows: list[OutboxRow]) -> None:
        """After the text went out: the chart of each symbol whose rule asks for one.

        Best effort by design: a chart failure is logged and never delays or loses the alert.
        """
        if self._charts is None or route is None or route.notifier is None:
            return
        symbols = dict.fromkeys(r.event.symbol for r in rows if r.event.chart)
        for symbol in symbols:
            try:
                png = await self._charts(symbol)
                if png is not None:
                    await route.notifier.send_image(route.channel.target, png, f"{symbol} levels")
            except Exception as exc:  # noqa: BLE001 - the chart is extra to an alert already sent:
                # a failed fetch, render or upload must not turn that delivery into a retry.
                log.warning(
                    "chart for %s to %s failed (%s); the alert went without it",
                    symbol,
                    route.channel.name,
                    type(exc).__name__,
                )

    async def _mark_sent(
        self, channel: str, rows: list[OutboxRow], *, provider_id: str | None
    ) -> list[int]:
        """Mark `rows` sent; the ids that were still ours."""
        now = self._clock()

        def _do() -> list[int]:
            with self._engine.begin() as conn:
                return [r.id for r in rows if mark_sent(conn, r, now=now, provider_id=provider_id)]

        ours = await asyncio.to_thread(_do)
        if len(ours) < len(rows):
            # Our claim lapsed while sending: another replica may have claimed these rows and
            # will send them again (the one duplicate window the outbox admits).
            log.warning(
                "%d message(s) to %s were sent after their claim lapsed; they may arrive twice",
                len(rows) - len(ours),
                channel,
            )
        return ours

    async def _mark_retry(
        self, channel: str, rows: list[OutboxRow], *, due_at: datetime, error: str
    ) -> list[int]:
        """Put `rows` back for `due_at`; the ids that were still ours."""

        def _do() -> list[int]:
            with self._engine.begin() as conn:
                return [r.id for r in rows if mark_retry(conn, r, due_at=due_at, error=error)]

        return self._still_ours(channel, rows, await asyncio.to_thread(_do))

    async def _mark_dead(self, channel: str, rows: list[OutboxRow], *, error: str) -> list[int]:
        """Give `rows` up; the ids that were still ours."""

        def _do() -> list[int]:
            with self._engine.begin() as conn:
                return [r.id for r in rows if mark_dead(conn, r, error=error)]

        return self._still_ours(channel, rows, await asyncio.to_thread(_do))

    @staticmethod
    def _still_ours(channel: str, rows: list[OutboxRow], ours: list[int]) -> list[int]:
        if len(ours) < len(rows):  # another replica holds them now: its outcome stands
            log.info(
                "%d message(s) to %s were claimed by another replica meanwhile; left to it",
                len(rows) - len(ours),
                channel,
            )
        return ours

    async def _pause_chat(self, channel: str, error: str) -> None:
        """Pause the personal alerts of a chat that blocked the bot or is gone: they are listed
        as paused, not evaluated, and not retried forever."""
        platform, _, chat = channel.partition(":")

        def _do() -> int:
            with self._engine.begin() as conn:
                return pause_chat(conn, platform, chat, error)

        if paused := await asyncio.to_thread(_do):
            log.warning("paused %d personal alert(s) of %s: %s", paused, channel, error)

    async def _warn_dead(self, channel: str, route: Route | None, error: str) -> None:
        """Tell the warnings route once per channel per day, never the failing channel itself."""
        now = self._clock()
        targets = [c for c in self.warnings_to if c != channel]
        day = now.toordinal()
        key = f"{channel}:{day}"
        if not targets or key in self._reported:
            return
        self._reported.add(key)
        where = f"{route.channel.kind.value} {route.channel.target}" if route else "unknown"
        event = warning_event(
            WarningKind.DELIVERY,
            channel,
            seq=day,
            reason=NotifyReason.FIRED,
            now=now,
            text=(
                f"Delivery to channel `{channel}` ({where}) failed for good: {error}. "
                "Alerts for it are dropped until this is fixed."
            ),
        )

        def _do() -> None:
            with self._engine.begin() as conn:
                enqueue(conn, [(event, targets)], now=now)

        await asyncio.to_thread(_do)


def build_routes(rules: RuleSet, notifiers: Mapping[str, Notifier]) -> dict[str, Route]:
    """Channel name → route (no notifier when the platform has no token)."""
    return {
        name: Route(channel, notifiers.get(channel.kind.value))
        for name, channel in rules.channels.items()
    }
