"""Telegram delivery through python-telegram-bot (`sendMessage`, parse mode HTML)."""

from __future__ import annotations

import os

# PTB 22 warns on every RetryAfter access unless timedeltas are opted into (PTB 22.2 notes).
os.environ.setdefault("PTB_TIMEDELTA", "1")

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    ReplyParameters,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)

from gexbot.adapters.notify import DeliveryError
from gexbot.adapters.pacing import (
    TELEGRAM_GLOBAL,
    TELEGRAM_PER_CHAT,
    TELEGRAM_PER_GROUP,
    Pacer,
)
from gexbot.core.alerts.buttons import actions_for, button_data
from gexbot.core.present.render import Rendered, telegram_html

log = logging.getLogger(__name__)

#: Called with (old chat id, new chat id) when a group became a supergroup.
OnMigrated = Callable[[str, str], Awaitable[None]]


def keyboard(token: str, rule_id: str) -> InlineKeyboardMarkup:
    """An alert's buttons as an inline keyboard, three a row; each carries only the token and
    its action (`gx1:TOKEN:s`, well under Telegram's 64 bytes)."""
    keys = [
        InlineKeyboardButton(action.label, callback_data=button_data(token, action))
        for action in actions_for(rule_id)
    ]
    return InlineKeyboardMarkup([keys[i : i + 3] for i in range(0, len(keys), 3)])


def replying_to(message_id: int | None) -> ReplyParameters | None:
    """A reply to `message_id` (its thread); sent on its own if that message was deleted."""
    if message_id is None:
        return None
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


def retry_after_seconds(exc: RetryAfter) -> float:
    """The wait a flood-control error asks for, in seconds (PTB gives a timedelta once
    PTB_TIMEDELTA is set, as above, and a number before)."""
    value: float | timedelta = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramNotifier:
    """Sends HTML messages to Telegram chats inside the Bot API's flood limits."""

    platform = "telegram"
    groups = True

    def __init__(
        self,
        bot: Bot,
        *,
        pacer: Pacer,
        migrated: dict[str, str] | None = None,
        on_migrated: OnMigrated | None = None,
    ) -> None:
        self._bot = bot
        self._pacer = pacer
        self.migrated = migrated if migrated is not None else {}
        self._on_migrated = on_migrated
        self._ready = False
        self._init_lock = asyncio.Lock()

    async def send_image(self, target: str, png: bytes, title: str) -> None:
        """`sendPhoto` with the title as caption."""
        chat = self.migrated.get(target, target)
        per_chat = TELEGRAM_PER_GROUP if chat.startswith("-") else TELEGRAM_PER_CHAT
        await self._pacer.wait([("telegram", TELEGRAM_GLOBAL), (f"telegram:{chat}", per_chat)])
        try:
            await self._bot.send_photo(
                chat_id=int(chat), photo=png, filename="levels.png", caption=title[:1024]
            )
        except TelegramError as exc:
            raise self._translate(exc, chat) from None

    async def close(self) -> None:
        """Close the bot's HTTP connections."""
        await self._bot.shutdown()
        self._ready = False

    async def send(
        self,
        target: str,
        items: Sequence[Rendered],
        *,
        reply_to: str | None = None,
        buttons: str | None = None,
    ) -> str | None:
        """Send one message; follows a group's migration to a supergroup once. A follow-up
        replies to the original (sent plainly if that was deleted)."""
        chat = self.migrated.get(target, target)
        try:
            return await self._send(chat, items, reply_to, buttons)
        except ChatMigrated as exc:
            new = str(exc.new_chat_id)
            log.warning("telegram chat %s became supergroup %s; following it", chat, new)
            self.migrated[target] = new
            if self._on_migrated is not None:
                await self._on_migrated(target, new)
            try:
                # The old chat's message ids do not carry over to the supergroup.
                return await self._send(new, items, None, buttons)
            except TelegramError as again:
                raise self._translate(again, new) from None
        except TelegramError as exc:
            raise self._translate(exc, chat) from None

    async def _send(
        self, chat: str, items: Sequence[Rendered], reply_to: str | None, buttons: str | None
    ) -> str | None:
        async with self._init_lock:  # one getMe, however many chats are sent to at once
            if not self._ready:
                await self._bot.initialize()  # a rejected token surfaces here
                self._ready = True
        per_chat = TELEGRAM_PER_GROUP if chat.startswith("-") else TELEGRAM_PER_CHAT
        await self._pacer.wait([("telegram", TELEGRAM_GLOBAL), (f"telegram:{chat}", per_chat)])
        message = await self._bot.send_message(
            chat_id=int(chat),
            text=telegram_html(items),
            parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
            reply_parameters=replying_to(
                int(reply_to) if reply_to is not None and reply_to.isdigit() else None
            ),
            reply_markup=(
                keyboard(buttons, items[0].event.rule_id)
                if buttons is not None and len(items) == 1 and items[0].event is not None
                else None
            ),
        )
        return str(message.message_id)

    def _translate(self, exc: TelegramError, chat: str) -> DeliveryError:
        # Messages are ours: PTB's can include the request URL, which holds the token.
        if isinstance(exc, RetryAfter):
            wait = retry_after_seconds(exc)
            self._pacer.push_back("telegram", wait)
            return DeliveryError(
                f"telegram: flood control, retry after {wait:g}s", retry_after=wait
            )
        if isinstance(exc, Forbidden):
            return DeliveryError(
                f"telegram: forbidden for chat {chat} (bot blocked or removed)", unreachable=True
            )
        if isinstance(exc, InvalidToken):
            return DeliveryError(
                "telegram: the bot token was rejected (GEXBOT_TELEGRAM_BOT_TOKEN)", permanent=True
            )
        if isinstance(exc, BadRequest):
            gone = "chat not found" in exc.message.lower()
            reason = "chat not found" if gone else "bad request"
            return DeliveryError(
                f"telegram: {reason} for chat {chat}", permanent=True, unreachable=gone
            )
        return DeliveryError(f"telegram: {type(exc).__name__}")
