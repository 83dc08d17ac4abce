"""A press of an alert's button, from any platform: judged by the core, done once through the
database (so any replica answers it, and a double press or a replayed delivery acts once)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy import Connection, Engine

from gexbot.chat.service import ChatService, Reply
from gexbot.core.alerts.buttons import (
    REFUSALS,
    Action,
    StoredButton,
    Verdict,
    alert_mute,
    done_line,
    judge,
    mute_until,
    parse_button_data,
    rule_fingerprint,
)
from gexbot.core.language.model import RuleSet, is_personal
from gexbot.core.personal.grammar import alert_id_of
from gexbot.store.buttons import claim_press, load_button
from gexbot.store.ops import add_mute
from gexbot.store.personal import delete_alerts, load_alert

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PressOutcome:
    """What to tell the presser, what to add to the message, and what to post in its thread."""

    verdict: Verdict
    toast: str  # the acknowledgement (Telegram's answerCallbackQuery, an ephemeral reply)
    line: str | None = None  # appended to the alert's message: what was done, by whom
    reply: Reply | None = None  # the chart or the levels, for the alert's thread


class ButtonPresses:
    """Answers presses of alert buttons for every platform."""

    def __init__(
        self,
        engine: Engine,
        *,
        rules: Callable[[], RuleSet],
        service: ChatService,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._rules = rules
        self._service = service
        self._clock = clock

    def fingerprint(self, rule_id: str, conn: Connection) -> str | None:
        """The current definition of a rule or personal alert, hashed (None: gone)."""
        if not is_personal(rule_id):
            rule = next((r for r in self._rules().rules if r.id == rule_id), None)
            return rule_fingerprint(rule) if rule is not None else None
        alert_id = alert_id_of(rule_id)
        alert = load_alert(conn, alert_id) if alert_id is not None else None
        return rule_fingerprint(alert.rule()) if alert is not None else None

    async def press(
        self,
        data: str,
        *,
        platform: str,
        chat_id: str,
        user: str,
        who: str,
        allowed: bool,
        aliases: Collection[str] = (),
    ) -> PressOutcome:
        """Judge and do one press. Refusals are logged without the press's data. `aliases`:
        other names of the chat it was pressed in (a Slack channel's `#name`, which is how a
        rule file may name it)."""
        parsed = parse_button_data(data)
        if parsed is None:
            log.warning("refused a %s button press: not one of gexbot's buttons", platform)
            return PressOutcome(Verdict.UNKNOWN, REFUSALS[Verdict.UNKNOWN])
        token, action = parsed
        button, current = await asyncio.to_thread(self._look_up, token)
        now = self._clock()
        if button is not None and button.chat_id in aliases:
            chat_id = button.chat_id
        verdict = judge(
            button,
            action,
            platform=platform,
            chat_id=chat_id,
            allowed=allowed,
            current_fingerprint=current,
            now=now,
        )
        if verdict is not Verdict.ACT or button is None:
            log.warning("refused a %s button press by %s: %s", platform, user, verdict.value)
            return PressOutcome(verdict, REFUSALS[verdict])
        if action in (Action.CHART, Action.LEVELS):
            first, _ = await asyncio.to_thread(
                partial(self._claim, button, action, who=who, now=now)
            )
            if not first:
                return PressOutcome(verdict, f"{action.label}: already sent in this thread.")
            reply = await self._service.button_reply(action.value, button.symbol)
            return PressOutcome(verdict, f"{action.label} for {button.symbol}", None, reply)
        until = mute_until(action, now) if action.mutes else None
        line = done_line(action, by=who, now=now, until=until)
        first, result = await asyncio.to_thread(
            partial(self._claim, button, action, who=who, now=now, until=until, line=line)
        )
        if not first:
            return PressOutcome(verdict, f"Already done: {result}")
        return PressOutcome(verdict, line, line)

    def _look_up(self, token: str) -> tuple[StoredButton | None, str | None]:
        with self._engine.connect() as conn:
            button = load_button(conn, token)
            current = self.fingerprint(button.rule_id, conn) if button is not None else None
        return button, current

    def _claim(
        self,
        button: StoredButton,
        action: Action,
        *,
        who: str,
        now: datetime,
        until: datetime | None = None,
        line: str | None = None,
    ) -> tuple[bool, str]:
        """Record the press and do its effect in one transaction (first press only)."""
        result = line or f"{action.label} by {who}"
        with self._engine.begin() as conn:
            first, said = claim_press(conn, button.token, action, by=who, result=result, now=now)
            if not first:
                return False, said
            if until is not None:
                add_mute(conn, alert_mute(button.rule_id, button.symbol, until), by=who, now=now)
            elif action is Action.DELETE:
                alert_id = alert_id_of(button.rule_id)
                if alert_id is not None:
                    delete_alerts(
                        conn,
                        [alert_id],
                        now=now,
                        platform=button.platform,
                        chat_id=button.chat_id,
                    )
        return True, said
