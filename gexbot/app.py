"""The composition root: the one place that reads settings, the clocks and the randomness,
and turns them into a running service.

`compose` builds the whole process (database, clients, notifiers, leadership, chat, HTTP
routes, the service and its loops); the `build_*` functions are its parts. Tests and
benchmarks build through the same functions, handing in a `Runtime` of their own clocks and,
through `Fakes`, the few parts they stand in for. Nothing below this module constructs a
collaborator or imports `gexbot.settings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from gexbot.adapters.backquant import BackQuantClient, RetryPolicy, build_http_client
from gexbot.settings import Settings, SettingsError, env_name
from gexbot.store.errors import DatabaseError, NoSchema

if TYPE_CHECKING:
    from datetime import datetime

    from rich.console import Console
    from sqlalchemy import Connection, Engine
    from telegram import Bot

    from gexbot.adapters.chains import ChainSource
    from gexbot.adapters.notify import Notifier
    from gexbot.adapters.source import LevelsSource
    from gexbot.charts.cache import ChartCache
    from gexbot.chat.buttons import ButtonPresses
    from gexbot.chat.discord import DiscordCommands
    from gexbot.chat.service import ChatService
    from gexbot.chat.slack import SlackCommands
    from gexbot.chat.telegram import TelegramCommands
    from gexbot.core.language.model import RuleSet
    from gexbot.core.market.snapshot import BundleSnapshot
    from gexbot.loops.health import Metrics
    from gexbot.loops.latest import LatestLevels
    from gexbot.loops.leadership import Leadership
    from gexbot.loops.rules import RulesWatcher
    from gexbot.loops.service import ChatLoop, HttpRoutes, Service
    from gexbot.store.single import InstanceLock
    from gexbot.web.console import WebConsole

# Each platform's library is imported by the builder that needs it, so a command that builds no
# notifier (`levels`, `check`) never loads PTB, slack-sdk, aiohttp or SQLAlchemy.

log = logging.getLogger("gexbot")


@dataclass(frozen=True, slots=True)
class Runtime:
    """The clocks and the randomness every part is handed."""

    now: Callable[[], datetime]  # the wall clock, UTC
    epoch: Callable[[], float]  # the wall clock in epoch seconds (HTTP stamps, signatures)
    monotonic: Callable[[], float]  # durations, leases, caches
    rng: random.Random  # jitter and backoff


def real_runtime() -> Runtime:
    """The process's own clocks and a generator seeded from the OS."""
    return Runtime(now=utcnow, epoch=epoch, monotonic=time.monotonic, rng=random.Random())


@dataclass(frozen=True, slots=True, kw_only=True)
class Fakes:
    """The parts a test or a benchmark stands in for; everything else is built as in
    production. The default stands in for nothing."""

    leadership: Leadership | None = None
    notifiers: dict[str, Notifier] | None = None
    client_type: type[BackQuantClient] = BackQuantClient
    retry: RetryPolicy | None = None


def utcnow() -> datetime:
    """The wall clock, UTC: the one place gexbot reads it (handed to everything else)."""
    from datetime import datetime

    return datetime.now(tz=UTC)


def epoch() -> float:
    """The wall clock in epoch seconds (the simulator's and the HTTP client's unit)."""
    return time.time()


def build_notifiers(
    settings: Settings, *, console: Console | None, runtime: Runtime
) -> dict[str, Notifier]:
    """One notifier per platform that is configured (the terminal always is)."""
    import aiohttp
    from slack_sdk.web.async_client import AsyncWebClient
    from telegram import Bot
    from telegram.request import HTTPXRequest

    from gexbot.adapters.pacing import Pacer
    from gexbot.adapters.slack import SlackNotifier
    from gexbot.adapters.telegram import TelegramNotifier
    from gexbot.adapters.terminal import TerminalNotifier

    pacer = Pacer(clock=runtime.monotonic)
    out: dict[str, Notifier] = {"terminal": TerminalNotifier(console, clock=runtime.now)}
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
    if settings.discord_bot_token is not None:
        out["discord"] = build_discord_notifier(settings)
    if settings.webhooks:
        out["webhook"] = build_webhook_notifier(settings, runtime=runtime)
    return out


def build_discord_notifier(settings: Settings) -> Notifier:
    """discord.py's HTTP client on `GEXBOT_DISCORD_API_URL`, logged in on first use."""
    from gexbot.adapters.discord import DiscordNotifier, DiscordRest, use_api

    assert settings.discord_bot_token is not None  # noqa: S101 - the caller checked
    use_api(settings.discord_api_url)
    return DiscordNotifier(DiscordRest(settings.discord_bot_token.get_secret_value()))


def build_webhook_notifier(settings: Settings, *, runtime: Runtime) -> Notifier:
    """One notifier for every webhook NAME configured; a name with a bad setting stays known,
    so its deliveries fail once, naming the variable."""
    import httpx

    from gexbot.adapters.webhook import WebhookNotifier, WebhookTarget
    from gexbot.settings import WEBHOOK_TIMEOUT, webhook_problems

    targets, problems = {}, {}
    for name, hook in settings.webhooks.items():
        found = webhook_problems(name, hook)
        if found:
            problems[name] = "; ".join(found)
            continue
        assert hook.url is not None  # noqa: S101 - webhook_problems requires it
        secret = hook.secret.get_secret_value().encode() if hook.secret else None
        timeout = float(hook.timeout) if hook.timeout else WEBHOOK_TIMEOUT
        targets[name] = WebhookTarget(hook.url.get_secret_value().strip(), secret, timeout)
    # No client-wide timeout: each request carries its webhook's own.
    http = httpx.AsyncClient(follow_redirects=False, timeout=WEBHOOK_TIMEOUT)
    return WebhookNotifier(http, targets, wall_clock=runtime.epoch, problems=problems)


@asynccontextmanager
async def backquant_client(
    settings: Settings, *, runtime: Runtime, fakes: Fakes = Fakes()
) -> AsyncIterator[BackQuantClient]:
    """A BackQuant client for `settings`, closed on exit. Needs `GEXBOT_API_KEY`.

    The runtime's epoch clock stamps when responses arrive, which staleness is judged by.
    """
    if settings.api_key is None or not settings.api_key.get_secret_value().strip():
        raise SettingsError([f"{env_name('api_key')}: required (your BackQuant API key)"])
    key = settings.api_key.get_secret_value()
    if key != key.strip():
        # BackQuant answers 401 to a key with surrounding whitespace (a documented cause).
        raise SettingsError([f"{env_name('api_key')}: has leading or trailing whitespace"])
    async with build_http_client(settings.api_url, key, instance=settings.instance) as http:
        yield fakes.client_type(
            http,
            api_key=key,
            rng=runtime.rng,
            stale_after=settings.stale_after,
            wall_clock=runtime.epoch,
            retry=fakes.retry,
        )


@asynccontextmanager
async def levels_source(
    settings: Settings, *, runtime: Runtime, fakes: Fakes = Fakes()
) -> AsyncIterator[LevelsSource]:
    """The source in force (GEXBOT_SOURCE): BackQuant's client, the venues' chains, or both."""
    if settings.levels_source == "chains":
        async with chain_source(settings, runtime=runtime) as chains:
            yield chains
    elif settings.levels_source == "both":
        from gexbot.adapters.dual import DualSource
        from gexbot.core.chains.crosscheck import Tolerance

        async with (
            backquant_client(settings, runtime=runtime, fakes=fakes) as client,
            chain_source(settings, runtime=runtime) as chains,
        ):
            dual = DualSource(
                client,
                chains,
                check_every=settings.cross_check_every,
                tolerance=Tolerance(
                    walls_pct=settings.cross_check_wall_pct,
                    levels_pct=settings.cross_check_level_pct,
                    after=settings.cross_check_after,
                ),
                interval=settings.poll_interval,
                monotonic=runtime.monotonic,
                wall_clock=runtime.epoch,
                rng=runtime.rng,
            )
            try:
                yield dual
            finally:
                await dual.aclose()
    else:
        async with backquant_client(settings, runtime=runtime, fakes=fakes) as client:
            yield client


@asynccontextmanager
async def chain_source(settings: Settings, *, runtime: Runtime) -> AsyncIterator[ChainSource]:
    """The venues' chains (GEXBOT_CHAIN_VENUES at their GEXBOT_<VENUE>_URL), closed on exit."""
    from gexbot.adapters.chains import ChainSource, build_venue_clients
    from gexbot.core.chains.levels import PutWalls
    from gexbot.core.chains.venues import Venue

    urls = {Venue(name): getattr(settings, f"{name}_url") for name in settings.chain_venues}
    clients = build_venue_clients(urls)
    try:
        yield ChainSource(
            clients,
            wall_clock=runtime.epoch,
            monotonic=runtime.monotonic,
            stale_after=settings.stale_after,
            min_interval=settings.chain_refresh,
            puts_by=PutWalls(settings.chain_put_walls),
        )
    finally:
        for client in clients.values():
            await client.aclose()


def _history_client(source: LevelsSource) -> BackQuantClient | None:
    """The client of BackQuant's history endpoints in `source`, if it has one."""
    from gexbot.adapters.dual import DualSource

    if isinstance(source, DualSource):
        return source.primary
    return source if isinstance(source, BackQuantClient) else None


def build_chat_service(
    settings: Settings,
    *,
    engine: Engine,
    client: LevelsSource,
    rules: Callable[[], RuleSet],
    latest: Callable[[], BundleSnapshot | None],
    charts: Callable[[str], Awaitable[bytes]],
    leadership: Leadership,
    runtime: Runtime,
) -> ChatService:
    """The one command service every chat platform feeds."""
    from gexbot.chat.preview import AlertPreview
    from gexbot.chat.service import ChatService
    from gexbot.loops.leadership import SoleInstance

    return ChatService(
        engine=engine,
        client=client,
        rules=rules,
        latest=latest,
        charts=charts,
        describe=None if isinstance(leadership, SoleInstance) else leadership.describe,
        universe=settings.symbols,
        fresh_for=settings.poll_interval,
        clock=runtime.now,
        preview=AlertPreview(
            engine,
            _history_client(client),
            clock=runtime.now,
            monotonic=runtime.monotonic,
        ),
        alerts_per_chat=settings.chat_alerts_per_chat,
    )


def build_telegram_commands(
    settings: Settings,
    *,
    engine: Engine,
    chat: ChatService,
    leadership: Leadership,
    runtime: Runtime,
    presses: ButtonPresses | None = None,
) -> TelegramCommands | None:
    """The Telegram command loop, when a bot token is set (None otherwise).

    With replicas, a long poll must not outlive the lease it started under, and a 409 from
    the previous leader's last poll is waited out for about one lease, not 30 s.
    """
    if settings.telegram_bot_token is None:
        return None
    from gexbot.chat.telegram import CONFLICT_BACKOFF, TelegramCommands
    from gexbot.loops.leadership import SoleInstance

    if not settings.telegram_allowed_users:
        log.warning("GEXBOT_TELEGRAM_ALLOWED_USERS is empty: every Telegram command is refused")
    bot = telegram_command_bot(
        settings.telegram_bot_token.get_secret_value(), settings.telegram_api_url
    )
    sole = isinstance(leadership, SoleInstance)
    bound = settings.telegram_poll_timeout if sole else max(1.0, settings.leader_lease)
    return TelegramCommands(
        bot,
        chat,
        engine=engine,
        allowed_users=settings.telegram_allowed_users,
        poll_timeout=min(settings.telegram_poll_timeout, bound),
        leader=leadership.is_leader,
        conflict_backoff=min(CONFLICT_BACKOFF, 2 * bound),
        monotonic=runtime.monotonic,
        presses=presses,
    )


def telegram_command_bot(token: str, base_url: str) -> Bot:
    """The Bot the command loop answers with. Its own pool of connections: PTB's default is
    one, so a text reply would queue behind a chart upload still on the wire."""
    from telegram import Bot
    from telegram.request import HTTPXRequest

    return Bot(
        token,
        base_url=base_url,
        request=HTTPXRequest(connection_pool_size=8),
        get_updates_request=HTTPXRequest(read_timeout=40.0),
    )


def build_leadership(
    settings: Settings, engine: Engine, metrics: Metrics, *, runtime: Runtime
) -> Leadership:
    """One process on SQLite (its file lock is the guarantee); a lease on PostgreSQL."""
    from gexbot.loops.leadership import LeaseElector, SoleInstance

    if engine.dialect.name == "sqlite":
        return SoleInstance(settings.instance)
    return LeaseElector(
        engine,
        instance=settings.instance,
        ttl=settings.leader_lease,
        metrics=metrics,
        monotonic=runtime.monotonic,
    )


def build_slack_commands(
    settings: Settings,
    *,
    chat: ChatService,
    engine: Engine,
    runtime: Runtime,
    presses: ButtonPresses | None = None,
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

    from gexbot.adapters.pacing import Pacer
    from gexbot.adapters.slack import SlackNotifier
    from gexbot.chat.slack import SlackCommands

    web = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
    )
    app_token = settings.slack_app_token
    return SlackCommands(
        app_token.get_secret_value() if app_token is not None else None,
        web,
        chat,
        # the same upload (and channel lookup) as alerts
        files=SlackNotifier(web, pacer=Pacer(clock=runtime.monotonic)),
        engine=engine,
        instance=settings.instance,
        clock=runtime.now,
        allowed_users=settings.slack_allowed_users,
        monotonic=runtime.monotonic,
        presses=presses,
    )


def build_discord_commands(
    settings: Settings,
    *,
    chat: ChatService,
    leadership: Leadership,
    notifiers: Mapping[str, Notifier],
    runtime: Runtime,
    presses: ButtonPresses | None = None,
) -> DiscordCommands | None:
    """Discord's `/gex`: registered with the application id, answered on the Interactions
    endpoint (public key) and/or over the Gateway; None when none of these is set."""
    wanted = (
        settings.discord_application_id or settings.discord_public_key or settings.discord_gateway
    )
    if not wanted or settings.discord_bot_token is None:
        return None  # `gexbot check` and the start refuse a half configuration
    from gexbot.adapters.discord import DiscordNotifier
    from gexbot.chat.discord import DiscordCommands, DiscordGateway, DiscordInteractions

    notifier = notifiers.get("discord")
    assert isinstance(notifier, DiscordNotifier)  # noqa: S101 - the token builds both
    rest = notifier.rest  # one client per bot token: one set of rate-limit buckets
    token = settings.discord_bot_token.get_secret_value()
    answers = DiscordInteractions(
        chat,
        rest,
        public_key=settings.discord_public_key,
        allowed_users=settings.discord_allowed_users,
        wall_clock=runtime.epoch,
        presses=presses,
    )
    gateway = None
    if settings.discord_gateway:
        gateway = DiscordGateway(answers, rest, token, leader=leadership.is_leader)
    return DiscordCommands(
        rest,
        application_id=settings.discord_application_id,
        answers=answers,
        endpoint=settings.discord_public_key is not None,
        gateway=gateway,
    )


def build_charts(
    settings: Settings, client: LevelsSource, engine: Engine, *, runtime: Runtime
) -> ChartCache:
    """The shared chart cache over its renderer process (started on first use)."""
    from gexbot.charts.cache import ChartCache
    from gexbot.charts.renderer import ChartRenderer

    return ChartCache(
        client,
        engine,
        ChartRenderer(),
        ttl=settings.poll_interval / 2,
        clock=runtime.now,
        monotonic=runtime.monotonic,
    )


def build_service(
    settings: Settings,
    *,
    engine: Engine,
    client: LevelsSource,
    watcher: RulesWatcher,
    notifiers: dict[str, Notifier],
    leadership: Leadership,
    metrics: Metrics,
    charts: ChartCache,
    latest: LatestLevels,
    runtime: Runtime,
    quiet_cycles: bool,
    chat_loops: Sequence[ChatLoop],
    http_routes: Sequence[HttpRoutes],
    fingerprint: Callable[[str, Connection], str | None] | None = None,
    answering: Sequence[str] = (),
) -> Service:
    """The service and its loops over the parts `compose` built."""
    from gexbot.core.alerts.evaluate import index_rules
    from gexbot.loops.cycle import Pipeline
    from gexbot.loops.deliver import Dispatcher, DispatchPolicy, build_routes
    from gexbot.loops.dispatch import DispatchLoop
    from gexbot.loops.health import Health
    from gexbot.loops.poll import PollConfig, PollLoop
    from gexbot.loops.reload import RulesReload
    from gexbot.loops.service import Listen, Service
    from gexbot.loops.waits import Changes

    rules = watcher.rules
    wake, changes = asyncio.Event(), Changes()
    pipeline = Pipeline(engine, index_rules(rules.rules), fence=leadership.fence)
    dispatcher = Dispatcher(
        engine,
        build_routes(rules, notifiers),
        clock=runtime.now,
        warnings_to=rules.warnings_notify,
        policy=DispatchPolicy(
            lease=settings.delivery_lease,
            threads=frozenset(
                platform
                for platform in ("slack", "telegram", "discord")
                if getattr(settings, f"{platform}_threads")
            ),
            buttons=frozenset(answering),
        ),
        rng=runtime.rng,
        notifiers=notifiers,
        fingerprint=fingerprint,
        charts=charts,
        monotonic=runtime.monotonic,
    )
    poll = PollLoop(
        PollConfig(
            symbols=settings.symbols,
            exchanges=settings.exchanges,
            interval=settings.poll_interval,
            missing_after=settings.missing_after,
            stale_after=settings.stale_after,
            quiet=quiet_cycles,
        ),
        client=client,
        watcher=watcher,
        pipeline=pipeline,
        leadership=leadership,
        latest=latest,
        metrics=metrics,
        engine=engine,
        clock=runtime.now,
        rng=runtime.rng,
        wake=wake,
        changes=changes,
    )

    def last_stamps() -> tuple[datetime | None, datetime | None]:
        last = latest.bundle
        return (last.received_at, last.upstream_at) if last else (None, None)

    return Service(
        leadership=leadership,
        poll=poll,
        dispatch=DispatchLoop(dispatcher, metrics=metrics, wake=wake, changes=changes),
        reload=RulesReload(
            watcher,
            pipeline=pipeline,
            dispatcher=dispatcher,
            leadership=leadership,
            notifiers=notifiers,
            engine=engine,
            clock=runtime.now,
            wake=wake,
        ),
        pipeline=pipeline,
        health=Health(
            poll=lambda: poll.state,
            leadership=leadership,
            interval=settings.poll_interval,
            rate_limit_remaining=lambda: client.rate_limit.remaining,
            personal_counts=pipeline.personal_counts,
            last_stamps=last_stamps,
            clock=runtime.now,
        ),
        metrics=metrics,
        latest=latest,
        charts=charts,
        changes=changes,
        notifiers=notifiers,
        chat_loops=chat_loops,
        http_routes=http_routes,
        listen=Listen(settings.http_host, settings.http_port) if settings.http_port else None,
        warm_charts=lambda: any(r.chart for r in watcher.rules.rules),
    )


@asynccontextmanager
async def compose(
    settings: Settings,
    ruleset: RuleSet,
    console: Console | None,
    *,
    runtime: Runtime,
    quiet_cycles: bool = False,
    fakes: Fakes = Fakes(),
) -> AsyncIterator[Service]:
    """The whole running process for `settings`: database (locked on SQLite, migrated or
    checked), BackQuant client, notifiers, leadership, chat commands and their HTTP
    endpoints, and the service over them. Everything is closed on exit."""
    from gexbot.loops.health import Metrics
    from gexbot.loops.latest import LatestLevels
    from gexbot.loops.rules import RulesWatcher

    # Off the event loop: connecting and migrating block, and nothing else may stall meanwhile.
    engine, lock = await asyncio.to_thread(_open_database, settings, Purpose.RUN)
    try:
        notifiers = (
            fakes.notifiers
            if fakes.notifiers is not None
            else build_notifiers(settings, console=console, runtime=runtime)
        )
        async with levels_source(settings, runtime=runtime, fakes=fakes) as client:
            watcher = RulesWatcher(
                settings.rules, ruleset, universe=settings.symbols, setting=env_name("rules")
            )
            metrics = Metrics()
            leadership = fakes.leadership or build_leadership(
                settings, engine, metrics, runtime=runtime
            )
            charts = build_charts(settings, client, engine, runtime=runtime)
            latest = LatestLevels(engine, leadership)
            chat = build_chat_service(
                settings,
                engine=engine,
                client=client,
                rules=lambda: watcher.rules,
                latest=latest,
                charts=charts,
                leadership=leadership,
                runtime=runtime,
            )
            chat_loops: list[ChatLoop] = []
            http_routes: list[HttpRoutes] = []
            from gexbot.chat.buttons import ButtonPresses

            presses = ButtonPresses(
                engine, rules=lambda: watcher.rules, service=chat, clock=runtime.now
            )
            telegram_commands = build_telegram_commands(
                settings,
                engine=engine,
                chat=chat,
                leadership=leadership,
                runtime=runtime,
                presses=presses,
            )
            if telegram_commands is not None:
                chat_loops.append(telegram_commands.run)
            slack_commands = build_slack_commands(
                settings, chat=chat, engine=engine, runtime=runtime, presses=presses
            )
            if slack_commands is not None:
                chat_loops.append(slack_commands.run)
                if settings.slack_signing_secret is not None:
                    from gexbot.chat.slack_http import SlackEndpoint

                    secret = settings.slack_signing_secret.get_secret_value()
                    http_routes.append(SlackEndpoint(slack_commands, secret).add_routes)
            discord_commands = build_discord_commands(
                settings,
                chat=chat,
                leadership=leadership,
                notifiers=notifiers,
                runtime=runtime,
                presses=presses,
            )
            if discord_commands is not None:
                chat_loops.append(discord_commands.run)
                if discord_commands.interactions is not None:
                    http_routes.append(discord_commands.interactions.add_routes)
            service = build_service(
                settings,
                engine=engine,
                client=client,
                watcher=watcher,
                notifiers=notifiers,
                leadership=leadership,
                metrics=metrics,
                charts=charts,
                latest=latest,
                runtime=runtime,
                quiet_cycles=quiet_cycles,
                chat_loops=chat_loops,
                http_routes=http_routes,
                fingerprint=presses.fingerprint,
                # Buttons only where presses reach the bot: a button nobody answers is worse
                # than none.
                answering=[
                    platform
                    for platform, answered in (
                        ("telegram", telegram_commands is not None),
                        ("slack", slack_commands is not None),
                        (
                            "discord",
                            discord_commands is not None
                            and bool(settings.discord_public_key or settings.discord_gateway),
                        ),
                    )
                    if answered and getattr(settings, f"{platform}_buttons")
                ],
            )
            if settings.http_port:
                service.http_routes.append(
                    build_console(settings, service, engine, runtime=runtime).add_routes
                )
            yield service
    finally:
        if lock is not None:
            lock.release()
        engine.dispose()


def build_console(
    settings: Settings, service: Service, engine: Engine, *, runtime: Runtime
) -> WebConsole:
    """The web console over the running service: its latest levels, the store, its role."""
    from gexbot.web.console import WebConsole

    token = settings.http_token.get_secret_value() if settings.http_token else None
    return WebConsole(
        engine=engine,
        latest=service.latest,
        role=service.leadership.describe,
        chart=service.charts.of_snapshot,
        changes=service.changes,
        clock=runtime.now,
        token=token,
    )


class Purpose(StrEnum):
    """Why a command opens the database, which decides what it may do to the schema.

    Replicas share a PostgreSQL schema, so only `gexbot db upgrade` changes it there; a listing
    or a replay never does, on either database.
    """

    RUN = "run"  # the bot: SQLite is locked and migrated, PostgreSQL must be current
    READ = "read"  # listings and replays: the schema must be current; an empty database is NoSchema
    EDIT = "edit"  # `alerts rm`, `db prune`: row changes on a current schema
    UPGRADE = "upgrade"  # `db upgrade`: migrates, on purpose


@contextmanager
def open_database(settings: Settings, purpose: Purpose) -> Iterator[Engine]:
    """The database of `settings`, opened for `purpose` (the one way every command opens it),
    disposed (and, for RUN on SQLite, unlocked) on exit. Raises DatabaseError naming
    GEXBOT_DATABASE_URL; NoSchema when a READ finds nothing was ever stored."""
    engine, lock = _open_database(settings, purpose)
    try:
        yield engine
    finally:
        if lock is not None:
            lock.release()
        engine.dispose()


def _open_database(settings: Settings, purpose: Purpose) -> tuple[Engine, InstanceLock | None]:
    var = env_name("database_url")
    try:
        return _open_for(settings.database_url, purpose)
    except NoSchema as exc:
        raise NoSchema(f"{var}: {exc}") from None
    except DatabaseError as exc:
        raise DatabaseError(f"{var}: {exc}") from None


def _open_for(url: str, purpose: Purpose) -> tuple[Engine, InstanceLock | None]:
    from sqlalchemy.engine import make_url

    from gexbot.store.engine import make_engine, migrate, require_current_schema
    from gexbot.store.outbox import release_orphans
    from gexbot.store.single import sqlite_lock

    if purpose in {Purpose.READ, Purpose.EDIT}:
        file = None
        with contextlib.suppress(Exception):  # an unparsable URL is make_engine's to report
            parsed = make_url(url)
            if parsed.get_backend_name() == "sqlite" and parsed.database != ":memory:":
                file = parsed.database
        if file and not Path(file).exists():  # a read never creates the file
            raise NoSchema("the database has no gexbot schema yet (no such file)")
    engine = make_engine(url)
    lock = sqlite_lock(engine) if purpose is Purpose.RUN else None
    try:
        if lock is not None:
            lock.acquire()
        if purpose is Purpose.UPGRADE or (
            purpose is Purpose.RUN and engine.dialect.name == "sqlite"
        ):
            migrate(engine)
        else:
            require_current_schema(engine)
        if purpose is Purpose.RUN and engine.dialect.name == "sqlite":
            # One process per SQLite file: what a killed run left claimed is ours to resend.
            with engine.begin() as conn:
                orphans = release_orphans(conn)
            if orphans:
                log.warning(
                    "%d message(s) were being sent when the last run stopped; sending again",
                    orphans,
                )
    except BaseException:
        if lock is not None:
            lock.release()
        engine.dispose()
        raise
    return engine, lock
