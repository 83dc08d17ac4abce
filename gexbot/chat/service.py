"""What a chat command does: read the levels, the status, the rules; mute; subscribe.

Platform-neutral: Telegram and Slack feed it parsed commands and post its plain-text replies
(each platform escapes them its own way).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import Connection, Engine

from gexbot.adapters.backquant import FetchError
from gexbot.adapters.source import LevelsSource
from gexbot.core.alerts.audience import Mute, Scope
from gexbot.core.commands.chat import (
    Command,
    CommandError,
    CommandName,
    alerts_reply,
    describe_scope,
    help_text,
    levels_reply,
    mute_reply,
    parse_command,
)
from gexbot.core.language.model import Rule, RuleSet
from gexbot.core.market.snapshot import BundleSnapshot, SymbolSnapshot, SymbolStatus
from gexbot.core.personal.grammar import AlertRequest, PersonalAlert, rule_id_of
from gexbot.core.present.format import fmt_age
from gexbot.core.present.labels import level_label
from gexbot.store.ops import active_mutes, add_mute, remove_mute, subscribe, unsubscribe
from gexbot.store.outbox import OutboxState, counts
from gexbot.store.personal import (
    Created,
    chat_alert_ids,
    counts_by_platform,
    create_alert,
    delete_alerts,
    list_alerts,
    resume_chat,
)

log = logging.getLogger(__name__)

REFUSAL = "Sorry, this bot only answers its desk."
REFUSE_AGAIN_AFTER = 3600.0  # one refusal per stranger per hour: no flooding either way


class Refusals:
    """When a stranger is due a refusal: at most once per REFUSE_AGAIN_AFTER (any platform)."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._last: dict[object, float] = {}

    def due(self, user: object) -> bool:
        """True (and remembered) when `user` has not been refused within the window."""
        now = self._monotonic()
        if now - self._last.get(user, -REFUSE_AGAIN_AFTER) < REFUSE_AGAIN_AFTER:
            return False
        self._last[user] = now
        return True


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply; `monospace` asks the platform for a code block (tables)."""

    text: str
    monospace: bool = False
    # The PNG chart to send after the text, made only then: rendering must not delay the text.
    chart: Callable[[], Awaitable[bytes | None]] | None = None


class ChatService:
    """Answers commands from any platform."""

    def __init__(
        self,
        *,
        engine: Engine,
        client: LevelsSource,
        rules: Callable[[], RuleSet],
        latest: Callable[[], BundleSnapshot | None],
        universe: list[str],
        fresh_for: float,
        clock: Callable[[], datetime],
        charts: Callable[[str], Awaitable[bytes]],
        describe: Callable[[], dict[str, object]] | None = None,
        preview: Callable[[Rule], Awaitable[str]] | None = None,
        alerts_per_chat: int = 25,
    ) -> None:
        self._preview = preview  # how often a new personal alert would have fired
        self._alerts_per_chat = alerts_per_chat
        self._describe = describe  # replicas: who leads (None: a single process)
        self._charts = charts  # where `/levels SYMBOL` gets its chart: the shared ChartCache
        self._engine = engine
        self._client = client
        self._rules = rules
        self._latest = latest
        self._universe = universe
        self._fresh_for = fresh_for
        self._clock = clock

    async def answer(self, text: str, *, platform: str, chat_id: str, user: str) -> Reply:
        """The reply to one command line; never raises for bad input."""
        rule_ids = [r.id for r in self._rules().rules]
        if "#" in text:  # `mute #12 1h`: this chat's own alerts are targets too
            own = await asyncio.to_thread(self._own_ids, platform, chat_id)
            rule_ids += [rule_id_of(i) for i in own]
        try:
            command = parse_command(text, rule_ids=rule_ids, universe=self._universe)
        except CommandError as exc:
            return Reply(str(exc))
        try:
            return await self._run(command, platform=platform, chat_id=chat_id, user=user)
        except Exception:
            log.exception("command %s failed", command.name.value)
            return Reply("Sorry, that failed on our side; it is logged. Try again shortly.")

    async def _run(self, c: Command, *, platform: str, chat_id: str, user: str) -> Reply:
        if c.name is CommandName.HELP:
            return Reply(help_text())
        if c.name is CommandName.LEVELS:
            return await self._levels(c.symbols or tuple(self._universe))
        if c.name is CommandName.RULES:
            return Reply(self._rules_text())
        if c.name is CommandName.STATUS:
            return Reply(await asyncio.to_thread(self._status_text), monospace=True)
        if c.name is CommandName.ALERT:
            assert c.alert is not None  # noqa: S101 - the parser sets it
            return await self._create(c.alert, platform=platform, chat_id=chat_id, user=user)
        if c.name is CommandName.ALERTS:
            mine = await asyncio.to_thread(self._list, platform, chat_id)
            return Reply(alerts_reply(mine, self._clock()))
        if c.name is CommandName.UNALERT:
            return await self._unalert(c, platform=platform, chat_id=chat_id)
        now = self._clock()
        assert c.scope is not None  # noqa: S101 - the parser sets it for these commands
        if c.name is CommandName.MUTE:
            assert c.duration is not None  # noqa: S101 - the parser sets it for a mute
            mute = Mute(c.scope, c.target, now + timedelta(seconds=c.duration))
            await self._write(lambda conn: add_mute(conn, mute, by=f"{platform}:{user}", now=now))
            log.info("%s:%s muted %s", platform, user, describe_scope(c.scope, c.target))
            return Reply(mute_reply(c.scope, c.target, c.duration))
        if c.name is CommandName.UNMUTE:
            scope = c.scope
            done = await self._write(lambda conn: remove_mute(conn, scope.value, c.target))
            what = describe_scope(c.scope, c.target)
            return Reply(f"Unmuted {what}." if done else f"{what} was not muted.")
        if c.scope is Scope.ALL:
            return Reply("Subscribe to a rule or a symbol, not to all.")
        args = (platform, chat_id, c.scope.value, c.target)
        if c.name is CommandName.SUBSCRIBE:
            new = await self._write(lambda conn: subscribe(conn, *args, now=now))
            what = describe_scope(c.scope, c.target)
            return Reply(
                f"This chat now gets {what} alerts." if new else f"Already subscribed to {what}."
            )
        gone = await self._write(lambda conn: unsubscribe(conn, *args))
        what = describe_scope(c.scope, c.target)
        return Reply(
            f"Unsubscribed from {what}." if gone else f"This chat was not subscribed to {what}."
        )

    def _own_ids(self, platform: str, chat_id: str) -> list[int]:
        with self._engine.connect() as conn:
            return chat_alert_ids(conn, platform, chat_id)

    def _list(self, platform: str, chat_id: str) -> list[PersonalAlert]:
        # A paused chat (it blocked the bot, or vanished) that asks again is reachable again.
        with self._engine.begin() as conn:
            if resumed := resume_chat(conn, platform, chat_id):
                log.info("resumed %d paused alert(s) of %s:%s", resumed, platform, chat_id)
            return list_alerts(conn, platform=platform, chat_id=chat_id)

    async def _create(
        self, request: AlertRequest, *, platform: str, chat_id: str, user: str
    ) -> Reply:
        now = self._clock()
        limit = self._alerts_per_chat

        def create() -> PersonalAlert | Created:
            with self._engine.begin() as conn:
                return create_alert(
                    conn,
                    platform=platform,
                    chat_id=chat_id,
                    owner=user,
                    request=request,
                    now=now,
                    limit=limit,
                )

        made = await asyncio.to_thread(create)
        if isinstance(made, Created):
            return Reply(
                f"This chat already has {limit} alerts, the most it may have "
                "(GEXBOT_CHAT_ALERTS_PER_CHAT). Delete one with /unalert ID first; see /alerts."
            )
        log.info("%s:%s created alert %s: %s", platform, user, made.rule_id, request.canonical())
        lines = [f"Alert {made.rule_id} set: {request.describe()}."]
        if self._preview is not None:
            try:
                lines.append(await self._preview(made.rule()))
            except Exception:  # the alert is stored: a failed preview must not hide that
                log.exception("preview of %s failed", made.rule_id)
                lines.append("(No preview: replaying the history failed; it is logged.)")
        lines.append(
            f"Delete it with /unalert {made.rule_id}; mute it with /mute {made.rule_id} 1h."
        )
        return Reply("\n".join(lines))

    async def _unalert(self, c: Command, *, platform: str, chat_id: str) -> Reply:
        now = self._clock()

        def delete() -> list[int]:
            with self._engine.begin() as conn:
                ids = (
                    chat_alert_ids(conn, platform, chat_id) if c.alert_id is None else [c.alert_id]
                )
                return delete_alerts(conn, ids, now=now, platform=platform, chat_id=chat_id)

        gone = await asyncio.to_thread(delete)
        if c.alert_id is None:
            return Reply(f"Deleted {len(gone)} alerts." if gone else "This chat has no alerts.")
        if not gone:
            return Reply(f"This chat has no alert #{c.alert_id}. See /alerts.")
        return Reply(f"Deleted alert #{c.alert_id}.")

    async def _write(self, fn: Callable[[Connection], bool | None]) -> bool | None:
        def run() -> bool | None:
            with self._engine.begin() as conn:
                return fn(conn)

        return await asyncio.to_thread(run)

    async def button_reply(self, action: str, symbol: str) -> Reply:
        """What an alert's `Levels` (`l`) or `Chart` (`c`) button posts in its thread."""
        if action == "l":
            return await self._levels((symbol,))
        return Reply(f"{symbol} levels chart", chart=partial(self._chart, symbol))

    async def _levels(self, symbols: tuple[str, ...]) -> Reply:
        now = self._clock()
        latest = await asyncio.to_thread(self._latest)  # a standby reads it from the database
        young = (
            latest is not None
            and latest.received_at is not None
            and (now - latest.received_at).total_seconds() < self._fresh_for
        )
        parts = []
        for sym in symbols:
            snap: SymbolSnapshot | None = latest.symbols.get(sym) if latest and young else None
            if snap is None or not snap.usable:
                snap = await self._fetch(sym)
            parts.append(levels_reply(snap, now) if snap else f"{sym}: no data right now.")
        chart = partial(self._chart, symbols[0]) if len(symbols) == 1 else None
        return Reply("\n\n".join(parts), monospace=True, chart=chart)

    async def _chart(self, sym: str) -> bytes | None:
        """The levels chart of one symbol (with candles); None when it cannot be made."""
        if sym not in self._universe:
            return None
        try:
            return await self._charts(sym)
        except Exception:  # the text reply must never be lost to a chart failure
            log.exception("chart for %s failed; replying without it", sym)
            return None

    async def _fetch(self, sym: str) -> SymbolSnapshot | None:
        if sym not in self._universe:
            return SymbolSnapshot(symbol=sym, status=SymbolStatus.INVALID)
        try:
            # One single-symbol call; it shares the client (and its rate budget) with the poller.
            snap = await self._client.levels(sym, ["spot", "expected_move", "max_pain"])
        except FetchError as exc:
            log.warning("levels for %s failed: %s", sym, exc)
            return None
        return snap

    def _rules_text(self) -> str:
        rules = self._rules().rules
        if not rules:
            return "No rules are loaded."
        lines = [f"{len(rules)} rules:"]
        for r in rules:
            cond = r.condition
            symbols = "all symbols" if r.symbols is None else ", ".join(r.symbols)
            lines.append(
                f"• {r.id}: {cond.kind.value} {level_label(cond.subject)} ({symbols}) → "
                f"{', '.join(r.notify)}"
            )
        return "\n".join(lines)

    def _status_text(self) -> str:
        now = self._clock()
        latest = self._latest()
        lines = []
        if self._describe is not None:
            role = self._describe()
            if role["role"] == "leader":
                lines.append(f"Replica {role['instance']}: leader (term {role.get('term')})")
            else:
                leader = role.get("leader") or "none right now"
                lines.append(
                    f"Replica {role['instance']}: standby; leader {leader}"
                    + (f" (term {role['term']})" if role.get("term") else "")
                )
        if latest is None or latest.received_at is None:
            lines.append("No successful poll yet.")
        else:
            lines.append(f"Last poll {fmt_age((now - latest.received_at).total_seconds())} ago")
            for sym, snap in latest.symbols.items():
                lines.append(
                    f"{sym:<10} {snap.status.value:<8} data age {fmt_age(snap.age_seconds(now))}"
                )
        with self._engine.connect() as conn:
            mutes = active_mutes(conn, now=now)
            queue = counts(conn)
            personal = counts_by_platform(conn)
        if mutes:
            lines.append("Mutes:")
            for m in mutes:
                left = fmt_age((m.until - now).total_seconds())
                by = f" (by {m.by})" if m.by else ""
                lines.append(f"  {describe_scope(Scope(m.scope), m.target)} for {left} more{by}")
        else:
            lines.append("No mutes.")
        waiting = queue[OutboxState.PENDING] + queue[OutboxState.SENDING]
        lines.append(f"Outbox: {waiting} waiting, {queue[OutboxState.DEAD]} dead")
        if personal:
            per = ", ".join(f"{n} {p}" for p, n in sorted(personal.items()))
            lines.append(f"Personal alerts: {sum(personal.values())} ({per})")
        else:
            lines.append("Personal alerts: none")
        return "\n".join(lines)
