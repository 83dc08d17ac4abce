"""The composition root: the one place that turns settings into clients."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from gexbot.adapters.backquant import BackQuantClient, build_http_client
from gexbot.settings import Settings, SettingsError, env_name

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy import Engine

    from gexbot.adapters.notify import Notifier
    from gexbot.chat.service import ChatService
    from gexbot.chat.slack import SlackCommands
    from gexbot.chat.telegram import TelegramCommands
    from gexbot.core.rules import RuleSet
    from gexbot.loops.deliver import Route
    from gexbot.loops.health import Metrics
    from gexbot.loops.leadership import Leadership

# Each platform's library is imported by the builder that needs it, so a command that builds no
# notifier (`levels`, `check`) never loads PTB, slack-sdk, aiohttp or SQLAlchemy.

log = logging.getLogger("gexbot")


def build_notifiers(settings: Settings, *, console: Console | None = None) -> dict[str, Notifier]:
    """One notifier per platform that is configured (the console always is)."""
    import aiohttp
    from slack_sdk.web.async_client import AsyncWebClient
    from telegram import Bot
    from telegram.request import HTTPXRequest

    from gexbot.adapters.console import ConsoleNotifier
    from gexbot.adapters.pacing import Pacer
    from gexbot.adapters.slack import SlackNotifier
    from gexbot.adapters.telegram import TelegramNotifier

    pacer = Pacer()
    out: dict[str, Notifier] = {"console": ConsoleNotifier(console)}
    if settings.slack_bot_token is not None:
        client = AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(),
            base_url=settings.slack_api_url,
            # One pooled session: without it slack-sdk opens a connection per message.
            session=aiohttp.ClientSession(),
        )
        out["slack"] = SlackNotifier(client, pacer=pacer)
    if settings.telegram_bot_token is not None:
        bot = Bot(
            settings.telegram_bot_token.get_secret_value(),
            base_url=settings.telegram_api_url,
            # PTB's default pool of 1 connection would serialise sends to different chats.
            request=HTTPXRequest(connection_pool_size=16),
        )
        out["telegram"] = TelegramNotifier(bot, pacer=pacer)
    return out


def build_routes(rules: RuleSet, notifiers: dict[str, Notifier]) -> dict[str, Route]:
    """Channel name → route (no notifier when the platform has no token)."""
    from gexbot.loops.deliver import Route

    return {
        name: Route(channel, notifiers.get(channel.kind.value))
        for name, channel in rules.channels.items()
    }


@asynccontextmanager
async def backquant_client(
    settings: Settings, *, wall_clock: Callable[[], float] = time.time
) -> AsyncIterator[BackQuantClient]:
    """A BackQuant client for `settings`, closed on exit. Needs `GEXBOT_API_KEY`.

    `wall_clock` (epoch seconds) stamps when responses arrive, which staleness is judged by;
    it must be the clock the service runs on.
    """
    if settings.api_key is None or not settings.api_key.get_secret_value().strip():
        raise SettingsError([f"{env_name('api_key')}: required (your BackQuant API key)"])
    key = settings.api_key.get_secret_value()
    if key != key.strip():
        # BackQuant answers 401 to a key with surrounding whitespace (a documented cause).
        raise SettingsError([f"{env_name('api_key')}: has leading or trailing whitespace"])
    async with build_http_client(settings.api_url, key, instance=settings.instance) as http:
        yield BackQuantClient(
            http,
            api_key=key,
            rng=random.Random(),
            stale_after=settings.stale_after,
            wall_clock=wall_clock,
        )


def build_telegram_commands(
    settings: Settings, engine: Engine, service: ChatService, leadership: Leadership
) -> TelegramCommands | None:
    """The Telegram command loop, when a bot token is set (None otherwise).

    With replicas, a long poll must not outlive the lease it started under, and a 409 from
    the previous leader's last poll is waited out for about one lease, not 30 s.
    """
    if settings.telegram_bot_token is None:
        return None
    from telegram import Bot
    from telegram.request import HTTPXRequest

    from gexbot.chat.telegram import CONFLICT_BACKOFF, TelegramCommands
    from gexbot.loops.leadership import SoleInstance

    if not settings.telegram_allowed_users:
        log.warning("GEXBOT_TELEGRAM_ALLOWED_USERS is empty: every Telegram command is refused")
    bot = Bot(
        settings.telegram_bot_token.get_secret_value(),
        base_url=settings.telegram_api_url,
        get_updates_request=HTTPXRequest(read_timeout=40.0),
    )
    sole = isinstance(leadership, SoleInstance)
    bound = settings.telegram_poll_timeout if sole else max(1.0, settings.leader_lease)
    return TelegramCommands(
        bot,
        service,
        engine=engine,
        allowed_users=settings.telegram_allowed_users,
        poll_timeout=min(settings.telegram_poll_timeout, bound),
        leader=leadership.is_leader,
        conflict_backoff=min(CONFLICT_BACKOFF, 2 * bound),
    )


def build_leadership(settings: Settings, engine: Engine, metrics: Metrics) -> Leadership:
    """One process on SQLite (its file lock is the guarantee); a lease on PostgreSQL."""
    from gexbot.loops.leadership import LeaseElector, SoleInstance

    if engine.dialect.name == "sqlite":
        return SoleInstance(settings.instance)
    return LeaseElector(
        engine, instance=settings.instance, ttl=settings.leader_lease, metrics=metrics
    )


def build_slack_commands(
    settings: Settings, service: ChatService, engine: Engine
) -> SlackCommands | None:
    """Slack commands, when the bot token and a transport (Socket Mode's app token, or the
    signing secret of the HTTP endpoint) are set."""
    if settings.slack_app_token is None and settings.slack_signing_secret is None:
        return None
    if settings.slack_bot_token is None:
        log.warning(
            "GEXBOT_SLACK_APP_TOKEN or GEXBOT_SLACK_SIGNING_SECRET is set but "
            "GEXBOT_SLACK_BOT_TOKEN is not: Slack commands are off"
        )
        return None
    from slack_sdk.web.async_client import AsyncWebClient

    from gexbot.chat.slack import SlackCommands

    web = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
    )
    app_token = settings.slack_app_token
    return SlackCommands(
        app_token.get_secret_value() if app_token is not None else None,
        web,
        service,
        engine=engine,
        instance=settings.instance,
        allowed_users=settings.slack_allowed_users,
    )
