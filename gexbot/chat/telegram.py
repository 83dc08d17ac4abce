"""Telegram commands: a getUpdates long-poll loop in the bot's own event loop.

The loop is ours (python-telegram-bot's `Bot.get_updates`, not `run_polling`), so the update
offset is persisted after each command: a restart never replays one. Only users listed in
GEXBOT_TELEGRAM_ALLOWED_USERS may command the bot; anyone else gets one short refusal.
Telegram allows one poller per token, so with several replicas only the leader polls; it
re-reads the stored offset whenever it becomes leader, and drops (unconfirmed) a batch fetched
while it was losing the lease, for the new leader to fetch again.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from telegram import (
    Bot,
    BotCommand,
    CallbackQuery,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import Conflict, Forbidden, InvalidToken, RetryAfter, TelegramError

from gexbot.adapters.telegram import replying_to, retry_after_seconds
from gexbot.chat.buttons import ButtonPresses
from gexbot.chat.service import REFUSAL, ChatService, Refusals, Reply
from gexbot.core.alerts.buttons import Verdict
from gexbot.core.commands.chat import DESCRIPTIONS
from gexbot.core.present.render import telegram_reply_html
from gexbot.loops.waits import Background, DatabaseOutage, sleep_or_stop
from gexbot.store.ops import get_cursor, set_cursor

log = logging.getLogger(__name__)

OFFSET_CURSOR = "telegram.update_offset"
CONFLICT_BACKOFF = 30.0
STANDBY_CHECK_EVERY = 0.25


class TelegramCommands:
    """Answers `/levels`, `/mute`… from allowed users."""

    def __init__(
        self,
        bot: Bot,
        service: ChatService,
        *,
        engine: Engine,
        allowed_users: Sequence[int],
        poll_timeout: float = 25.0,
        monotonic: Callable[[], float],
        leader: Callable[[], bool] = lambda: True,
        conflict_backoff: float = CONFLICT_BACKOFF,
        presses: ButtonPresses | None = None,
    ) -> None:
        self._presses = presses
        self._leader = leader
        self._conflict_backoff = conflict_backoff
        self._bot = bot
        self._service = service
        self._engine = engine
        self._allowed = frozenset(allowed_users)
        self._timeout = poll_timeout
        self._refusals = Refusals(monotonic)
        self._charts = Background(log, "a chart after a Telegram reply")
        self._conflict_logged = False

    def _offset(self) -> int:
        with self._engine.connect() as conn:
            value = get_cursor(conn, OFFSET_CURSOR)
        return int(value) if value else 0

    def _save_offset(self, offset: int) -> None:
        with self._engine.begin() as conn:
            set_cursor(conn, OFFSET_CURSOR, str(offset))

    async def _start(self) -> bool:
        """Log in, drop any webhook, register the command menu; False: the token is bad."""
        try:
            await self._bot.initialize()
            await self._bot.delete_webhook(drop_pending_updates=False)
            await self._bot.set_my_commands(
                [
                    BotCommand(name.value, desc.split(" — ")[-1][:256])
                    for name, desc in DESCRIPTIONS.items()
                ]
            )
        except InvalidToken:
            log.error("Telegram rejected GEXBOT_TELEGRAM_BOT_TOKEN; commands are off")
            return False
        except TelegramError as exc:
            log.warning("Telegram start-up call failed (%s); polling anyway", type(exc).__name__)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Long-poll until `stop`; never dies from a bad update, a network or a database error."""
        if not await self._start():
            return
        try:
            await self._poll(stop)
        finally:
            await self._charts.drain()
            with contextlib.suppress(TelegramError):
                await self._bot.shutdown()

    async def _poll(self, stop: asyncio.Event) -> None:
        offset = 0
        leading = False
        unsaved = False  # an offset the database did not take yet: saved again before polling
        outage = DatabaseOutage(log, "Telegram commands")
        while not stop.is_set():
            if not self._leader():
                leading = False
                await sleep_or_stop(stop, STANDBY_CHECK_EVERY)
                continue
            try:
                if not leading:  # (again) the poller: the last leader may have moved the offset
                    # …and ours may be ahead of the store if a database error kept it unsaved
                    offset = max(offset, await asyncio.to_thread(self._offset))
                    leading = True
                if unsaved:
                    await asyncio.to_thread(self._save_offset, offset)
                    unsaved = False
                outage.over()
            except SQLAlchemyError as exc:
                # Polling on without the stored offset could answer a command twice after a
                # restart; wait for the database instead (the updates keep at Telegram).
                await sleep_or_stop(stop, outage.failed(exc))
                continue
            updates = await self._get_updates(offset, stop)
            if updates and not self._leader():
                leading = False
                continue  # not confirmed: the new leader fetches them again
            for update in updates:
                if update.update_id < offset:
                    continue  # confirmed before a restart: never replay
                try:
                    await self._handle(update)
                except Exception:
                    log.exception("handling Telegram update %d failed", update.update_id)
                offset = update.update_id + 1
                try:
                    await asyncio.to_thread(self._save_offset, offset)
                except SQLAlchemyError as exc:
                    unsaved = True  # this process will not replay it; the store catches up
                    outage.failed(exc)

    async def _get_updates(self, offset: int, stop: asyncio.Event) -> tuple[Update, ...]:
        """One long poll; after an error, the wait it asks for and no updates."""
        try:
            updates = await self._bot.get_updates(
                offset=offset,
                timeout=int(self._timeout),
                allowed_updates=[Update.MESSAGE, Update.CALLBACK_QUERY],
                read_timeout=self._timeout + 10,
            )
        except Conflict:
            if not self._conflict_logged:
                log.error(
                    "another process is polling this Telegram bot token (409 Conflict); "
                    "commands pause here and retry every %gs",
                    self._conflict_backoff,
                )
                self._conflict_logged = True
            await sleep_or_stop(stop, self._conflict_backoff)
            return ()
        except RetryAfter as exc:
            await sleep_or_stop(stop, retry_after_seconds(exc))
            return ()
        except TelegramError as exc:
            log.warning("getUpdates failed (%s); retrying", type(exc).__name__)
            await sleep_or_stop(stop, 2.0)
            return ()
        self._conflict_logged = False
        return updates

    async def _handle(self, update: Update) -> None:
        if update.callback_query is not None:
            await self._press(update.callback_query)
            return
        message = update.message
        if message is None or not message.text or message.from_user is None:
            return
        text = message.text
        if not text.startswith("/"):
            return  # commands only; ordinary chat in a group is not ours
        user = message.from_user.id
        chat = message.chat.id
        if user not in self._allowed:
            if self._refusals.due(user):
                log.warning(
                    "refused a command from Telegram user %d (not in "
                    "GEXBOT_TELEGRAM_ALLOWED_USERS)",
                    user,
                )
                await self._send(chat, Reply(REFUSAL))
            return
        reply = await self._service.answer(
            text, platform="telegram", chat_id=str(chat), user=str(user)
        )
        await self._send(chat, reply)

    async def _press(self, query: CallbackQuery) -> None:
        """A button on an alert: answered at once (Telegram shows a spinner until then), then
        the message says what was done, and a chart or levels go in its thread."""
        message = query.message
        if self._presses is None or message is None:
            with contextlib.suppress(TelegramError):
                await query.answer()
            return
        user = query.from_user
        outcome = await self._presses.press(
            query.data or "",
            platform="telegram",
            chat_id=str(message.chat.id),
            user=str(user.id),
            who=f"@{user.username}" if user.username else user.first_name,
            allowed=user.id in self._allowed,
        )
        try:
            await query.answer(
                text=outcome.toast[:200], show_alert=outcome.verdict is not Verdict.ACT
            )
        except TelegramError as exc:
            log.warning("answering a Telegram button press failed (%s)", type(exc).__name__)
        if outcome.line is not None and isinstance(message, Message):
            text = (message.text_html or "") + f"\n<i>{html.escape(outcome.line)}</i>"
            try:
                await self._bot.edit_message_text(
                    chat_id=message.chat.id,
                    message_id=message.message_id,
                    text=text,
                    parse_mode=ParseMode.HTML,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                    reply_markup=message.reply_markup,
                )
            except TelegramError as exc:
                log.warning("editing a Telegram alert failed (%s)", type(exc).__name__)
        if outcome.reply is not None:
            await self._send(message.chat.id, outcome.reply, reply_to=message.message_id)

    async def _send(self, chat: int, reply: Reply, *, reply_to: int | None = None) -> None:
        text = telegram_reply_html(reply.text, monospace=reply.monospace)
        try:
            await self._bot.send_message(
                chat_id=chat,
                text=text,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                reply_parameters=replying_to(reply_to),
            )
        except Forbidden:
            log.info("Telegram chat %d blocked the bot; reply dropped", chat)
            return
        except TelegramError as exc:
            log.warning("reply to Telegram chat %d failed (%s)", chat, type(exc).__name__)
            return
        if reply.chart is not None:  # after the text, without holding up the next command
            self._charts.start(self._send_chart(chat, reply.chart, reply_to))

    async def _send_chart(
        self, chat: int, chart: Callable[[], Awaitable[bytes | None]], reply_to: int | None
    ) -> None:
        png = await chart()
        if png is None:
            return
        try:
            await self._bot.send_photo(
                chat_id=chat,
                photo=png,
                filename="levels.png",
                reply_parameters=replying_to(reply_to),
            )
        except TelegramError as exc:
            log.warning("chart to Telegram chat %d failed (%s)", chat, type(exc).__name__)
