"""Chat commands: parsing (pure) and the Telegram loop against a fake Bot API over HTTP."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import Engine
from telegram import Bot

from gexbot.adapters.backquant import BackQuantClient, build_http_client
from gexbot.app import utcnow
from gexbot.charts.cache import ChartCache
from gexbot.charts.renderer import ChartRenderer
from gexbot.chat.service import ChatService
from gexbot.chat.slack import SlackCommands
from gexbot.chat.telegram import TelegramCommands
from gexbot.core.alerts.audience import Scope
from gexbot.core.commands.chat import CommandError, CommandName, parse_command
from gexbot.core.language.rulefile import build_ruleset, parse_rule_file
from gexbot.loops.leadership import Leadership, SoleInstance
from gexbot.settings import Settings
from gexbot.sim.market import Simulator
from gexbot.sim.server import SimServer
from gexbot.store.ops import active_mutes, list_subscriptions
from tests.chatkit import chat_service, chat_settings, slack_commands, telegram_commands
from tests.fakes import FakeSlack, FakeTelegram
from tests.waiting import until

RULE_IDS = ["hvl-regime", "near-call-resistance"]


@pytest.mark.parametrize(
    ("text", "name", "scope", "target"),
    [
        ("/levels btc ETH", CommandName.LEVELS, None, ""),
        ("/levels@gexbot_bot", CommandName.LEVELS, None, ""),
        ("<@U0BOT> status", CommandName.STATUS, None, ""),
        ("mute hvl-regime 2h", CommandName.MUTE, Scope.RULE, "hvl-regime"),
        ("/mute btc 30m", CommandName.MUTE, Scope.SYMBOL, "BTCUSDT"),
        ("/mute all 1d", CommandName.MUTE, Scope.ALL, "all"),
        ("/unmute ALL", CommandName.UNMUTE, Scope.ALL, "all"),
        ("/subscribe HYPE", CommandName.SUBSCRIBE, Scope.SYMBOL, "HYPEUSDT"),
        (
            "/unsubscribe near-call-resistance",
            CommandName.UNSUBSCRIBE,
            Scope.RULE,
            "near-call-resistance",
        ),
        ("", CommandName.HELP, None, ""),
    ],
)
def test_parse_commands(text: str, name: CommandName, scope: Scope | None, target: str) -> None:
    c = parse_command(text, rule_ids=RULE_IDS)
    assert (c.name, c.scope, c.target) == (name, scope, target)


def test_levels_normalises_and_dedupes_symbols() -> None:
    assert parse_command("/levels btc BTCUSDT eth", rule_ids=[]).symbols == ("BTCUSDT", "ETHUSDT")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("/frobnicate", "Unknown command “frobnicate”"),
        ("/mute hvl-regime soon", "Bad duration “soon”: write 30m, 2h or 1d."),
        ("/mute hvl-regime 30d", "A mute lasts between 1 second and 7 days."),
        ("/mute hvl-regim 1h", "Did you mean hvl-regime?"),
        ("/mute", "Usage: mute RULE|SYMBOL|RULE@SYMBOL|all DURATION"),
        ("/subscribe all", "Unknown rule or symbol “all”"),
        ("/levels " + "btc " * 9, "At most 8 symbols at a time."),
        ("/levels " + "x" * 300, "That is too long"),
    ],
)
def test_bad_commands_get_a_one_line_hint(text: str, says: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_command(text, rule_ids=RULE_IDS)
    assert says in str(info.value)
    assert "\n" not in str(info.value)


# -- the Telegram loop ------------------------------------------------------------------------

ALLOWED = 111
SECOND = 222
STRANGER = 999
RULES = build_ruleset(
    [
        parse_rule_file(
            "channels: {tty: {terminal: true}}\ndefaults: {notify: tty}\n"
            "rules: [{id: hvl-regime, when: {crosses: hvl}}]\n",
            "r.yaml",
        )
    ]
)


@pytest.fixture
async def world(db: Engine) -> AsyncIterator[tuple[FakeTelegram, SimServer, BackQuantClient]]:

    telegram = FakeTelegram()
    await telegram.start()
    sim = SimServer(Simulator(clock=time.time), api_key="k")
    await sim.start()
    async with build_http_client(sim.url, "k") as http:
        yield (
            telegram,
            sim,
            BackQuantClient(http, wall_clock=time.time, api_key="k", rng=random.Random(0)),
        )
    await sim.stop()
    await telegram.stop()


_RENDERERS: list[ChartRenderer] = []  # the chart processes this test started


@pytest.fixture(autouse=True)
async def _stop_renderers() -> AsyncIterator[None]:
    yield
    while _RENDERERS:
        await _RENDERERS.pop().close()


def _service(
    db: Engine,
    client: BackQuantClient,
    charts: Callable[[str], Awaitable[bytes]] | None = None,
    settings: Settings | None = None,
) -> ChatService:
    if charts is None:
        _RENDERERS.append(ChartRenderer())
        charts = ChartCache(
            client, db, _RENDERERS[-1], ttl=0, clock=utcnow, monotonic=time.monotonic
        )
    return chat_service(settings or chat_settings(), db, client, rules=RULES, charts=charts)


@asynccontextmanager
async def _slack(
    db: Engine, client: BackQuantClient, *, socket: bool = True, **kw: Any
) -> AsyncIterator[tuple[FakeSlack, SlackCommands]]:
    """Fake Slack and the bot's Slack commands against it (connected over Socket Mode unless
    `socket` is False: the HTTP endpoint then carries them)."""
    slack = FakeSlack()
    await slack.start()
    transport: dict[str, Any] = (
        {} if socket else {"slack_app_token": None, "slack_signing_secret": "s3cret"}
    )
    settings = chat_settings(slack=slack, **transport, **kw)
    commands = slack_commands(settings, db, _service(db, client, settings=settings))
    stop = asyncio.Event()
    task = asyncio.create_task(commands.run(stop))
    try:
        yield slack, commands
    finally:
        stop.set()
        await task
        await slack.stop()


def _loop(
    db: Engine,
    telegram: FakeTelegram,
    client: BackQuantClient,
    *,
    charts: Callable[[str], Awaitable[bytes]] | None = None,
    leadership: Leadership | None = None,
) -> TelegramCommands:
    settings = chat_settings(telegram=telegram, telegram_allowed_users=[ALLOWED, SECOND])
    chat = _service(db, client, charts, settings)
    return telegram_commands(settings, db, chat, leadership=leadership)


async def _run_until(
    loop: TelegramCommands, done: Callable[[], object], timeout: float = 8
) -> None:
    """Run the command loop until `done()` (failing after `timeout` s), then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        await until(done, timeout=timeout, what="the Telegram command loop")
    finally:
        stop.set()
        await task  # the loop shuts its Bot down as it ends


async def test_allowed_users_get_answers_and_strangers_one_refusal(
    db: Engine, world: tuple[FakeTelegram, SimServer, BackQuantClient]
) -> None:
    telegram, _, client = world
    telegram.push_command("/levels btc", user=ALLOWED)
    telegram.push_command("/levels btc", user=STRANGER)
    telegram.push_command("/status", user=STRANGER)
    telegram.push_command("/mute hvl-regime 1h", user=ALLOWED)
    telegram.push_command("/subscribe BTC", user=SECOND)
    telegram.push_command("/frobnicate <b>", user=ALLOWED)
    telegram.push_command("/status", user=ALLOWED)
    loop = _loop(db, telegram, client)
    await _run_until(loop, lambda: len(telegram.messages) >= 6 and telegram.photos)
    mine = telegram.replies_to(ALLOWED)
    assert mine[0].startswith("<pre>BTCUSDT  spot ")
    assert "HVL" in mine[0]
    assert "data age" in mine[0]
    assert mine[1] == "Muted rule hvl-regime for 1h. Alerts are recorded, not sent."
    assert mine[2].startswith("Unknown command “frobnicate”")  # typed text never echoed raw
    assert "rule hvl-regime for " in mine[3]
    assert "Outbox: 0 waiting, 0 dead" in mine[3]
    assert telegram.replies_to(STRANGER) == ["Sorry, this bot only answers its desk."]
    assert telegram.replies_to(SECOND) == ["This chat now gets BTCUSDT alerts."]
    assert [c["command"] for c in telegram.commands[0]][:2] == ["levels", "status"]
    # `/levels btc` also brings the chart, as a photo.
    (chat, png), *_ = telegram.photos
    assert chat == str(ALLOWED)
    assert png.startswith(b"\x89PNG")
    with db.connect() as conn:
        assert [(m.scope, m.target) for m in active_mutes(conn, now=utcnow())] == [
            ("rule", "hvl-regime")
        ]
        assert [s.channel for s in list_subscriptions(conn)] == [f"telegram:{SECOND}"]


async def test_a_restart_never_replays_a_command(
    db: Engine, world: tuple[FakeTelegram, SimServer, BackQuantClient]
) -> None:
    telegram, _, client = world
    telegram.push_command("/help", user=ALLOWED)
    await _run_until(_loop(db, telegram, client), lambda: len(telegram.messages) >= 1)
    telegram.offsets.clear()
    await _run_until(_loop(db, telegram, client), lambda: len(telegram.offsets) >= 2, timeout=3)
    assert len(telegram.messages) == 1  # /help was answered once
    assert telegram.offsets[0] == 1001  # resumed after the stored offset


async def test_levels_of_one_symbol_takes_its_chart_from_the_shared_source(
    db: Engine, world: tuple[FakeTelegram, SimServer, BackQuantClient]
) -> None:
    _, _, client = world
    asked: list[str] = []

    async def shared(symbol: str) -> bytes:
        asked.append(symbol)
        return b"\x89PNG shared"

    service = _service(db, client, shared)
    one = await service.answer("levels btc", platform="telegram", chat_id="1", user="1")
    both = await service.answer("levels btc eth", platform="telegram", chat_id="1", user="1")
    assert one.chart is not None
    assert both.chart is None  # a chart for one symbol only
    assert asked == []  # nothing made before the text is out
    assert await one.chart() == b"\x89PNG shared"
    assert asked == ["BTCUSDT"]


async def test_the_levels_text_goes_out_before_the_chart_is_made(
    db: Engine,
    world: tuple[FakeTelegram, SimServer, BackQuantClient],
) -> None:
    telegram, _, client = world
    release = asyncio.Event()

    async def slow_chart(*_a: object, **_k: object) -> bytes:
        await release.wait()  # a slow upstream call or render
        return b"\x89PNG slow chart"

    loop = _loop(db, telegram, client, charts=slow_chart)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    telegram.push_command("/levels btc", user=ALLOWED)
    await until(lambda: telegram.messages, timeout=5, what="the text reply")
    assert telegram.replies_to(ALLOWED)[0].startswith("<pre>BTCUSDT  spot ")
    assert telegram.photos == []  # the table did not wait for the chart
    release.set()
    await until(lambda: telegram.photos, timeout=5, what="the chart")
    stop.set()
    await task
    assert telegram.photos == [(str(ALLOWED), b"\x89PNG slow chart")]


async def test_a_text_reply_does_not_queue_behind_a_chart_upload(
    db: Engine, world: tuple[FakeTelegram, SimServer, BackQuantClient]
) -> None:
    telegram, _, client = world
    telegram.photo_gate = asyncio.Event()  # the chart upload hangs until released

    async def chart(_symbol: str) -> bytes:
        return b"\x89PNG quick"

    loop = _loop(db, telegram, client, charts=chart)  # its Bot as `gexbot run` builds it
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    telegram.push_command("/levels btc", user=ALLOWED)
    await until(lambda: "sendPhoto" in telegram.calls, timeout=5, what="the chart upload")
    telegram.push_command("/help", user=ALLOWED)
    await until(lambda: len(telegram.messages) >= 2, timeout=5, what="the /help reply")
    assert telegram.photos == []  # the upload is still held
    telegram.photo_gate.set()
    await until(lambda: telegram.photos, timeout=5, what="the chart")
    stop.set()
    await task


class _Leading(SoleInstance):
    """Leads while its cell says so (a replica gaining the lease)."""

    def __init__(self, cell: list[bool]) -> None:
        super().__init__("r1")
        self._cell = cell

    def is_leader(self) -> bool:
        return self._cell[0]


async def test_only_the_leader_polls_telegram_and_it_resumes_from_the_stored_offset(
    db: Engine, world: tuple[FakeTelegram, SimServer, BackQuantClient]
) -> None:
    telegram, _, client = world
    telegram.push_command("/help", user=ALLOWED)
    await _run_until(_loop(db, telegram, client), lambda: len(telegram.messages) >= 1)
    telegram.offsets.clear()
    leading = [False]
    loop = _loop(db, telegram, client, leadership=_Leading(leading))
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    # An observation window: a standby's defect would show as a getUpdates call within it.
    await asyncio.sleep(0.6)
    assert telegram.offsets == []  # a standby never calls getUpdates
    telegram.push_command("/help", user=ALLOWED)
    leading[0] = True  # this replica takes over
    await until(lambda: len(telegram.messages) >= 2, timeout=5, what="the new leader's answer")
    stop.set()
    await task
    assert telegram.offsets[0] == 1001  # where the previous leader stopped
    assert len(telegram.messages) == 2  # the new command answered, the old one not again


async def test_a_second_instance_conflict_backs_off_without_crashing(
    db: Engine,
    world: tuple[FakeTelegram, SimServer, BackQuantClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    telegram, _, client = world
    telegram.conflicts = 2
    telegram.push_command("/help", user=ALLOWED)
    # The root waits out a 409 for about two long polls (2 s here); a unit of the loop, so
    # built by hand with a short wait.
    loop = TelegramCommands(
        Bot(telegram.token, base_url=telegram.api_url),
        _service(db, client),
        engine=db,
        allowed_users=[ALLOWED],
        poll_timeout=1,
        conflict_backoff=0.2,
        monotonic=time.monotonic,
    )
    await _run_until(loop, lambda: len(telegram.messages) >= 1)
    assert "another process is polling this Telegram bot token (409 Conflict)" in caplog.text
    assert caplog.text.count("409 Conflict") == 1  # logged once, not per retry
    assert len(telegram.messages) == 1


# -- Slack Socket Mode ---------------------------------------------------------------------------


async def test_slack_slash_command_and_mention_over_socket_mode(
    db: Engine, world: tuple[FakeTelegram, SimServer, BackQuantClient]
) -> None:
    _, _, client = world
    async with _slack(db, client) as (slack, _commands):
        levels = {"command": "/gex", "text": "levels eth", "user_id": "U1", "channel_id": "C1"}
        ack = await slack.envelope("slash_commands", {**levels, "trigger_id": "T1"})
        assert ack["payload"]["text"].startswith("```ETHUSDT  spot ")
        # Slack redelivers (or another replica got it first): acknowledged, not answered twice.
        again = await slack.envelope("slash_commands", {**levels, "trigger_id": "T1"})
        assert "payload" not in again
        # The chart follows the reply, as a file in that channel.
        await until(lambda: slack.uploads, timeout=10, what="the chart upload")
        assert [(c, t) for c, t, _ in slack.uploads] == [("C1", "GEX levels")]
        assert slack.uploads[0][2].startswith(b"\x89PNG")
        ack = await slack.envelope(
            "slash_commands",
            {"command": "/gex", "text": "mute <b>x</b> 1h", "user_id": "U1", "channel_id": "C1"},
        )
        assert "&lt;b&gt;x&lt;/b&gt;" in ack["payload"]["text"]  # typed text escaped
        await slack.envelope(
            "events_api",
            {
                "event": {
                    "type": "app_mention",
                    "text": "<@U0BOT> help",
                    "channel": "C2",
                    "ts": "1.2",
                    "user": "U1",
                }
            },
        )
        await until(lambda: slack.posts, timeout=10, what="the answer to the mention")
        assert slack.posts[0].channel == "C2"
        assert slack.posts[0].text.startswith("gexbot commands")


async def test_slack_strangers_get_a_refusal_and_no_data_when_users_are_listed(
    db: Engine,
    world: tuple[FakeTelegram, SimServer, BackQuantClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, _, client = world
    levels = {"command": "/gex", "text": "levels btc", "channel_id": "C1"}
    async with _slack(db, client, slack_allowed_users=["U1"]) as (slack, _commands):
        ack = await slack.envelope("slash_commands", {**levels, "user_id": "U9", "trigger_id": "a"})
        assert ack["payload"]["text"] == "Sorry, this bot only answers its desk."
        ack = await slack.envelope("slash_commands", {**levels, "user_id": "U1", "trigger_id": "b"})
        assert ack["payload"]["text"].startswith("```BTCUSDT  spot ")
        for n in range(2):  # two mentions by a stranger: one public refusal, not two
            event = {"type": "app_mention", "text": "<@U0BOT> levels btc", "channel": "C2"}
            await slack.envelope(
                "events_api",
                {"event_id": f"E{n}", "event": {**event, "ts": f"{n}.1", "user": "U9"}},
            )
        await until(lambda: slack.posts, timeout=10, what="the refusal")
        await asyncio.sleep(0.2)  # an observation window: a second refusal would show in it
        assert [p.text for p in slack.posts] == ["Sorry, this bot only answers its desk."]
        assert "refused a command from Slack user U9" in caplog.text


# -- Slack over HTTP (signing secret) ------------------------------------------------------------

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def _signed(body: str, *, secret: str = SECRET, age: float = 0) -> dict[str, str]:

    from slack_sdk.signature import SignatureVerifier

    ts = str(int(time.time() - age))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


async def test_slack_http_endpoint_verifies_signatures_and_answers_once(
    db: Engine, world: tuple[FakeTelegram, SimServer, BackQuantClient]
) -> None:
    import json
    from urllib.parse import urlencode

    import httpx

    from gexbot.chat.slack_http import SlackEndpoint
    from gexbot.loops.health import HealthServer, Metrics

    _, _, client = world
    command = urlencode(
        {
            "command": "/gex",
            "text": "levels btc",
            "user_id": "U1",
            "channel_id": "C1",
            "trigger_id": "T1",
        }
    )
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with _slack(db, client, socket=False) as (slack, commands):
        endpoint = SlackEndpoint(commands, SECRET)
        server = HealthServer(Metrics(), lambda: (True, {}), routes=[endpoint.add_routes])
        url = await server.start("127.0.0.1", 0)
        try:
            async with httpx.AsyncClient(base_url=url) as http:
                resp = await http.post(
                    "/slack/commands", content=command, headers={**form, **_signed(command)}
                )
                assert resp.status_code == 200
                assert resp.json()["response_type"] == "ephemeral"
                assert resp.json()["text"].startswith("```BTCUSDT  spot ")
                again = await http.post(
                    "/slack/commands", content=command, headers={**form, **_signed(command)}
                )
                assert (again.status_code, again.content) == (200, b"")  # a retry: not twice
                for bad in (
                    _signed(command, secret="not-the-secret"),
                    _signed(command, age=600),  # replayed ten minutes later
                    {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
                    {},
                ):
                    refused = await http.post(
                        "/slack/commands", content=command, headers={**form, **bad}
                    )
                    assert refused.status_code == 401
                challenge = json.dumps({"type": "url_verification", "challenge": "c-123"})
                resp = await http.post(
                    "/slack/events", content=challenge, headers=_signed(challenge)
                )
                assert resp.json() == {"challenge": "c-123"}
                mention = json.dumps(
                    {
                        "type": "event_callback",
                        "event_id": "Ev1",
                        "event": {
                            "type": "app_mention",
                            "text": "<@U0BOT> help",
                            "channel": "C2",
                            "ts": "5.1",
                            "user": "U1",
                        },
                    }
                )
                for _ in range(2):  # Slack retries an event it thinks was not acknowledged
                    resp = await http.post(
                        "/slack/events", content=mention, headers=_signed(mention)
                    )
                    assert resp.status_code == 200
                await until(
                    lambda: slack.posts and slack.uploads, timeout=10, what="the answer and chart"
                )
                await asyncio.sleep(0.2)  # an observation window: a retry answered twice shows
            assert [(p.channel, p.text.split("\n")[0]) for p in slack.posts] == [
                ("C2", "gexbot commands:")
            ]
            assert [c for c, _, _ in slack.uploads] == ["C1"]  # the /gex levels btc chart
        finally:
            await endpoint.close()
            await server.stop()


def test_the_slack_endpoint_needs_a_port_and_the_bot_token() -> None:
    from gexbot.cli.check import slack_endpoint_problems
    from gexbot.settings import load_settings

    settings = load_settings(env_file=None, slack_signing_secret=SECRET)
    assert slack_endpoint_problems(settings) == [
        "GEXBOT_SLACK_SIGNING_SECRET: the Slack command endpoint needs GEXBOT_HTTP_PORT (it is 0, "
        "off)",
        "GEXBOT_SLACK_SIGNING_SECRET: Slack commands also need GEXBOT_SLACK_BOT_TOKEN",
    ]
    ok = load_settings(
        env_file=None, slack_signing_secret=SECRET, http_port=9108, slack_bot_token="xoxb-1"
    )
    assert slack_endpoint_problems(ok) == []
