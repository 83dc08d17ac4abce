"""Chat services for tests, built by the composition root (`gexbot.app`) exactly as `gexbot
run` builds them, on settings that point at the local fakes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Engine

from gexbot.adapters.backquant import BackQuantClient
from gexbot.app import (
    build_chat_service,
    build_slack_commands,
    build_telegram_commands,
    real_runtime,
)
from gexbot.chat.service import ChatService
from gexbot.chat.slack import SlackCommands
from gexbot.chat.telegram import TelegramCommands
from gexbot.core.language.model import RuleSet
from gexbot.core.market.snapshot import BundleSnapshot
from gexbot.loops.leadership import Leadership, SoleInstance
from gexbot.settings import Settings, load_settings
from tests.fakes import FakeSlack, FakeTelegram

UNIVERSE = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "HYPEUSDT"]


def chat_settings(
    *, telegram: FakeTelegram | None = None, slack: FakeSlack | None = None, **kw: Any
) -> Settings:
    """Settings for the fakes given (Telegram's long poll bounded to 1 s), plus `kw`."""
    values: dict[str, Any] = {"symbols": UNIVERSE, "poll_interval": 30, "instance": "r1"}
    if telegram is not None:
        values |= {
            "telegram_bot_token": telegram.token,
            "telegram_api_url": telegram.api_url,
            "telegram_poll_timeout": 1,
        }
    if slack is not None:
        values |= {
            "slack_bot_token": slack.token,
            "slack_app_token": slack.app_token,
            "slack_api_url": slack.api_url,
        }
    return load_settings(None, **(values | kw))


def chat_service(
    settings: Settings,
    db: Engine,
    client: BackQuantClient,
    *,
    rules: RuleSet,
    charts: Callable[[str], Awaitable[bytes]],
    latest: Callable[[], BundleSnapshot | None] = lambda: None,
    leadership: Leadership | None = None,
) -> ChatService:
    """The command service, as the root builds it."""
    return build_chat_service(
        settings,
        engine=db,
        client=client,
        rules=lambda: rules,
        latest=latest,
        charts=charts,
        leadership=leadership or SoleInstance(settings.instance),
        runtime=real_runtime(),
    )


def telegram_commands(
    settings: Settings, db: Engine, chat: ChatService, *, leadership: Leadership | None = None
) -> TelegramCommands:
    """The Telegram command loop, as the root builds it."""
    built = build_telegram_commands(
        settings,
        engine=db,
        chat=chat,
        leadership=leadership or SoleInstance(settings.instance),
        runtime=real_runtime(),
    )
    assert built is not None, "the settings carry no Telegram token"
    return built


def slack_commands(settings: Settings, db: Engine, chat: ChatService) -> SlackCommands:
    """The Slack commands, as the root builds them."""
    built = build_slack_commands(settings, chat=chat, engine=db, runtime=real_runtime())
    assert built is not None, "the settings carry no Slack token and transport"
    return built
