"""Buttons on alerts: the core's judgement (a table), and Telegram end to end: the real PTB
clients against the fake, through the outbox, the command loop and the database."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from gexbot.adapters.backquant import BackQuantClient, build_http_client
from gexbot.app import (
    build_notifiers,
    build_slack_commands,
    build_telegram_commands,
    real_runtime,
)
from gexbot.chat.buttons import ButtonPresses
from gexbot.core.alerts.audience import Scope
from gexbot.core.alerts.buttons import (
    Action,
    StoredButton,
    Verdict,
    actions_for,
    button_data,
    judge,
    mute_until,
    parse_button_data,
)
from gexbot.core.alerts.evaluate import index_rules
from gexbot.core.alerts.states import NotifyReason
from gexbot.core.language.model import RuleSet
from gexbot.core.language.rulefile import build_ruleset, parse_rule_file
from gexbot.loops.cycle import Pipeline
from gexbot.loops.deliver import Dispatcher, DispatchPolicy, build_routes
from gexbot.loops.leadership import SoleInstance
from gexbot.settings import Settings
from gexbot.sim.market import Simulator
from gexbot.sim.server import SimServer
from gexbot.store.buttons import button_token, claim_press
from gexbot.store.ops import active_mutes
from tests.chatkit import chat_service, chat_settings
from tests.fakes import FakeSlack, FakeTelegram
from tests.rulekit import T0, bundle, snapshot
from tests.waiting import until

TRADER, OTHER, STRANGER = 111, 222, 999


def _rules(cooldown: str = "0s") -> RuleSet:
    text = (
        "channels: {me: {telegram: 111}}\n"
        "rules:\n"
        "  - id: above-cr\n"
        "    symbols: [BTCUSDT]\n"
        "    when: {above: call_resistance}\n"
        "    notify: [me]\n"
        "    repeat: 5m\n"
        f"    cooldown: {cooldown}\n"
    )
    return build_ruleset([parse_rule_file(text, "rules.yaml")])


ABOVE = bundle(snapshot(105, call_resistance=103))
BELOW = bundle(snapshot(101, call_resistance=103))
BUTTON = StoredButton("t" * 22, "r|BTCUSDT", "r", "BTCUSDT", "fp", "telegram", "111", T0)


# -- the judgement (pure) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("button", "change", "verdict"),
    [
        (BUTTON, {}, Verdict.ACT),
        (None, {}, Verdict.UNKNOWN),
        (BUTTON, {"chat_id": "222"}, Verdict.FOREIGN),
        (BUTTON, {"platform": "slack"}, Verdict.FOREIGN),
        (BUTTON, {"allowed": False}, Verdict.NOT_ALLOWED),
        (BUTTON, {"current_fingerprint": "changed"}, Verdict.STALE),
        (BUTTON, {"current_fingerprint": None}, Verdict.STALE),  # the rule is gone
        (BUTTON, {"now": T0 + timedelta(days=7, seconds=1)}, Verdict.STALE),
        (BUTTON, {"action": Action.DELETE}, Verdict.NOT_HERE),
        (replace(BUTTON, rule_id="#4"), {"action": Action.DELETE}, Verdict.ACT),
    ],
)
def test_a_press_acts_only_when_everything_holds(
    button: StoredButton | None, change: dict[str, Any], verdict: Verdict
) -> None:
    args: dict[str, Any] = {
        "platform": "telegram",
        "chat_id": "111",
        "allowed": True,
        "current_fingerprint": "fp",
        "now": T0 + timedelta(hours=1),
    }
    action = change.pop("action", Action.SNOOZE)
    assert judge(button, action, **(args | change)) is verdict


def test_button_data_is_opaque_and_bounded() -> None:
    token = "A" * 22
    for action in actions_for("#12"):
        data = button_data(token, action)
        assert len(data.encode()) <= 64  # Telegram's callback_data limit
        assert parse_button_data(data) == (token, action)
    for forged in (
        "",
        "gx1:short:s",
        f"gx1:{token}:zz",
        f"gx2:{token}:s",
        "x" * 65,
        f"gx1:{token}",
    ):
        assert parse_button_data(forged) is None
    assert Action.DELETE not in actions_for("hvl-regime")  # only personal alerts are deleted


def test_the_mutes_end_when_their_buttons_say() -> None:
    now = datetime(2026, 12, 8, 7, 30, tzinfo=UTC)
    assert mute_until(Action.SNOOZE, now) == now + timedelta(hours=1)
    assert mute_until(Action.MUTE_4H, now) == now + timedelta(hours=4)
    assert mute_until(Action.MUTE_1D, now) == now + timedelta(days=1)
    assert mute_until(Action.MUTE_TOMORROW, now) == datetime(2026, 12, 9, 8, tzinfo=UTC)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["ana", "bo", "cy"]), min_size=1, max_size=8))
def test_any_run_of_presses_of_one_button_acts_once(tmp_path_factory: Any, who: list[str]) -> None:
    from gexbot.store.engine import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('p') / 'b.db'}")
    migrate(engine)
    with engine.begin() as conn:
        token = button_token(
            conn,
            outbox_id=1,
            alert_key="r|BTCUSDT",
            rule_id="r",
            symbol="BTCUSDT",
            fingerprint="fp",
            platform="telegram",
            chat_id="111",
            now=T0,
        )
    outcomes = []
    for user in who:
        with engine.begin() as conn:
            outcomes.append(
                claim_press(conn, token, Action.SNOOZE, by=user, result=f"by {user}", now=T0)
            )
    assert [first for first, _ in outcomes].count(True) == 1
    assert {said for _, said in outcomes} == {f"by {who[0]}"}  # everyone is told the first
    engine.dispose()


# -- Telegram, end to end -------------------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[BackQuantClient]:
    sim = SimServer(Simulator(clock=time.time), api_key="k")
    await sim.start()
    async with build_http_client(sim.url, "k") as http:
        yield BackQuantClient(http, wall_clock=time.time, api_key="k", rng=random.Random(0))
    await sim.stop()


class ButtonDesk:
    """The pipeline, a dispatcher putting buttons on `platform`'s alerts and the presses,
    wired as the root wires them, on one clock the test moves."""

    def __init__(
        self,
        db: Engine,
        client: BackQuantClient,
        settings: Settings,
        rules: RuleSet,
        platform: str,
    ) -> None:
        self.now = T0
        self.rules = rules

        async def no_chart(_symbol: str) -> bytes:
            return b"\x89PNG fake"

        self.chat = chat_service(settings, db, client, rules=rules, charts=no_chart)
        self.presses = ButtonPresses(
            db, rules=lambda: self.rules, service=self.chat, clock=lambda: self.now
        )
        self.notifiers = build_notifiers(settings, console=None, runtime=real_runtime())
        self.pipeline = Pipeline(db, index_rules(rules.rules))
        self.dispatcher = Dispatcher(
            db,
            build_routes(rules, self.notifiers),
            clock=lambda: self.now,
            policy=DispatchPolicy(lease=60, max_attempts=3, buttons=frozenset({platform})),
            rng=random.Random(0),
            monotonic=time.monotonic,
            fingerprint=self.presses.fingerprint,
        )

    async def cycle(self, market: Any, after: float) -> list[NotifyReason]:
        self.now += timedelta(seconds=after)
        report = self.pipeline.run(market, now=self.now)
        await self.dispatcher.run_once()
        return [d.reason for d in report.result.decisions]

    async def alert(self) -> None:
        """Spot below call resistance, then above it: one alert sent."""
        await self.cycle(BELOW, 0)
        await self.cycle(ABOVE, 30)

    async def close(self) -> None:
        for n in self.notifiers.values():
            await n.close()


class Desk(ButtonDesk):
    """…with the Telegram command loop."""

    def __init__(self, db: Engine, telegram: FakeTelegram, client: BackQuantClient) -> None:
        settings = chat_settings(telegram=telegram, telegram_allowed_users=[TRADER, OTHER])
        super().__init__(db, client, settings, _rules(), "telegram")
        commands = build_telegram_commands(
            settings,
            engine=db,
            chat=self.chat,
            leadership=SoleInstance("r1"),
            runtime=real_runtime(),
            presses=self.presses,
        )
        assert commands is not None
        self.commands = commands

    async def presses_answered(self, telegram: FakeTelegram, n: int) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(self.commands.run(stop))
        try:
            await until(lambda: len(telegram.answers) >= n, timeout=20, what=f"{n} answers")
        finally:
            stop.set()
            await task


async def test_an_alert_is_snoozed_from_its_button_once_by_an_allowed_user(
    db: Engine, client: BackQuantClient
) -> None:
    telegram = FakeTelegram()
    await telegram.start()
    desk = Desk(db, telegram, client)
    try:
        await desk.alert()
        (alert,) = telegram.messages
        labels = [key["text"] for row in alert.keyboard or [] for key in row]
        assert labels == ["Snooze 1h", "Mute 4h", "Mute 1d", "Mute to 08:00", "Chart", "Levels"]
        snooze = alert.button("Snooze 1h")
        token = snooze.split(":")[1]
        telegram.push_press(snooze, user=TRADER, message=alert, username="ana")
        telegram.push_press(snooze, user=OTHER, message=alert)  # a second press: done once
        telegram.push_press(snooze, user=STRANGER, message=alert)  # not on the allow-list
        telegram.push_press(f"gx1:{'Z' * 22}:s", user=TRADER, message=alert)  # forged
        telegram.push_press(alert.button("Levels"), user=TRADER, message=alert)
        await desk.presses_answered(telegram, 5)
        await until(lambda: len(telegram.messages) >= 2, timeout=10, what="the levels reply")
        # …and the reminder the rule would send at 5 minutes is recorded, not sent.
        assert NotifyReason.SILENCED in await desk.cycle(ABOVE, 301)
    finally:
        await desk.close()
        await telegram.stop()
    done, again, stranger, forged, levels = (a.get("text", "") for a in telegram.answers)
    assert done == "Snoozed 1h by @ana, until 13:00 UTC"  # pressed at 12:00:30 + 1 h, in minutes
    assert again == "Already done: Snoozed 1h by @ana, until 13:00 UTC"
    assert stranger == "You are not allowed to command this bot."
    assert telegram.answers[2].get("show_alert") == "true"
    assert forged == "This button is not one of gexbot's current alerts."
    assert token not in forged
    assert levels == "Levels for BTCUSDT"
    (edit,) = telegram.edits  # only the snooze changed the message
    assert edit["text"].endswith("<i>Snoozed 1h by @ana, until 13:00 UTC</i>")
    assert edit["message_id"] == str(alert.message_id)
    reply = telegram.messages[1]
    assert reply.reply_to == alert.message_id  # the levels go in the alert's thread
    assert "BTCUSDT" in reply.text
    with db.connect() as conn:
        mutes = active_mutes(conn, now=desk.now)
    assert [(m.scope, m.target) for m in mutes] == [(Scope.ALERT, "above-cr@BTCUSDT")]
    assert len(telegram.messages) == 2  # no reminder went out


async def test_a_button_of_a_changed_rule_is_no_longer_current(
    db: Engine, client: BackQuantClient
) -> None:
    telegram = FakeTelegram()
    await telegram.start()
    desk = Desk(db, telegram, client)
    try:
        await desk.alert()
        (alert,) = telegram.messages
        desk.rules = _rules(cooldown="10m")  # edited and reloaded since the alert
        telegram.push_press(alert.button("Mute 4h"), user=TRADER, message=alert)
        await desk.presses_answered(telegram, 1)
    finally:
        await desk.close()
        await telegram.stop()
    assert telegram.answers[0]["text"] == "This alert is no longer current."
    assert telegram.edits == []
    with db.connect() as conn:
        assert active_mutes(conn, now=desk.now) == []


# -- Slack, end to end (Socket Mode and the signed HTTP endpoint) ------------------------------


SLACK_RULES = (
    "channels: {desk: {slack: '#gex-alerts'}}\n"
    "rules:\n"
    "  - id: above-cr\n"
    "    symbols: [BTCUSDT]\n"
    "    when: {above: call_resistance}\n"
    "    notify: [desk]\n"
)


class SlackDesk(ButtonDesk):
    """…with the Slack commands."""

    def __init__(self, db: Engine, slack: FakeSlack, client: BackQuantClient, **kw: Any) -> None:
        settings = chat_settings(slack=slack, **kw)
        rules = build_ruleset([parse_rule_file(SLACK_RULES, "rules.yaml")])
        super().__init__(db, client, settings, rules, "slack")
        commands = build_slack_commands(
            settings, chat=self.chat, engine=db, runtime=real_runtime(), presses=self.presses
        )
        assert commands is not None
        self.commands = commands


def _block_actions(
    post: Any, value: str, *, user: str = "U1", select: bool = False
) -> dict[str, Any]:
    action: dict[str, Any] = (
        {"type": "static_select", "action_id": "gx_mute", "selected_option": {"value": value}}
        if select
        else {"type": "button", "action_id": "gx_s", "value": value}
    )
    action["action_ts"] = f"{time.time():.6f}"
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "ana"},
        "channel": {"id": "C0DESK", "name": "gex-alerts"},
        "message": {"ts": post.ts, "text": post.text, "blocks": post.blocks},
        "actions": [action],
        "trigger_id": "tr1",
    }


def _values(post: Any) -> dict[str, str]:
    (actions,) = [b for b in post.blocks if b.get("type") == "actions"]
    out = {}
    for element in actions["elements"]:
        if element["type"] == "button":
            out[element["text"]["text"]] = element["value"]
        else:
            for option in element["options"]:
                out[option["text"]["text"]] = option["value"]
    return out


async def test_slack_buttons_over_socket_mode(db: Engine, client: BackQuantClient) -> None:
    slack = FakeSlack()
    await slack.start()
    desk = SlackDesk(db, slack, client)
    stop = asyncio.Event()
    task = asyncio.create_task(desk.commands.run(stop))
    try:
        await desk.alert()
        (post,) = slack.posts
        values = _values(post)
        assert list(values) == [
            "Snooze 1h",
            "4 hours",
            "1 day",
            "until 08:00 UTC tomorrow",
            "Chart",
            "Levels",
        ]
        ack = await slack.envelope("interactive", _block_actions(post, values["Snooze 1h"]))
        assert "payload" not in ack  # acknowledged at once, handled after
        await until(lambda: slack.updates, timeout=10, what="the message edit")
        menu = _block_actions(post, values["4 hours"], select=True)
        await slack.envelope("interactive", menu)
        await slack.envelope("interactive", menu)  # Slack redelivers: answered once
        await until(lambda: len(slack.ephemerals) >= 2, timeout=10, what="two answers")
        stranger = _block_actions(post, values["1 day"], user="U9")
        desk_only = SlackDesk(db, slack, client, slack_allowed_users=["U1"])  # a stricter desk
        await desk_only.commands.interaction(stranger)
        await desk_only.close()
    finally:
        stop.set()
        await task
        await desk.close()
        await slack.stop()
    (edit, edit_4h) = slack.updates
    assert edit["ts"] == post.ts
    assert edit["blocks"][-1]["elements"][0]["text"] == "Snoozed 1h by @ana, until 13:00 UTC"
    assert edit_4h["blocks"][-1]["elements"][0]["text"] == "Muted 4h by @ana, until 16:00 UTC"
    assert [e["text"] for e in slack.ephemerals] == [
        "Snoozed 1h by @ana, until 13:00 UTC",
        "Muted 4h by @ana, until 16:00 UTC",
        "You are not allowed to command this bot.",
    ]
    with db.connect() as conn:
        mutes = active_mutes(conn, now=desk.now)
    assert [(m.scope, m.target, m.by) for m in mutes] == [(Scope.ALERT, "above-cr@BTCUSDT", "@ana")]
    assert mutes[0].until == T0 + timedelta(seconds=30) + timedelta(hours=4)


async def test_slack_buttons_over_the_signed_http_endpoint(
    db: Engine, client: BackQuantClient
) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer
    from slack_sdk.signature import SignatureVerifier

    from gexbot.chat.slack_http import SlackEndpoint

    slack = FakeSlack()
    await slack.start()
    desk = SlackDesk(db, slack, client, slack_app_token=None, slack_signing_secret="s3cret")
    try:
        await desk.alert()
        (post,) = slack.posts
        body = "payload=" + quote(json.dumps(_block_actions(post, _values(post)["Snooze 1h"])))
        stamp = str(int(time.time()))
        signature = SignatureVerifier("s3cret").generate_signature(timestamp=stamp, body=body)
        assert signature is not None
        app = web.Application()
        endpoint = SlackEndpoint(desk.commands, "s3cret")
        endpoint.add_routes(app)
        async with TestClient(TestServer(app)) as http:
            headers = {
                "X-Slack-Request-Timestamp": stamp,
                "Content-Type": "application/x-www-form-urlencoded",
            }
            forged = await http.post(
                "/slack/interactivity", data=body, headers={**headers, "X-Slack-Signature": "v0=0"}
            )
            assert forged.status == 401
            good = await http.post(
                "/slack/interactivity",
                data=body,
                headers={**headers, "X-Slack-Signature": signature},
            )
            assert good.status == 200
            await until(lambda: slack.updates, timeout=10, what="the message edit")
        await endpoint.close()
    finally:
        await desk.close()
        await slack.stop()
    assert slack.updates[0]["blocks"][-1]["elements"][0]["text"].startswith("Snoozed 1h by @ana")


# -- Discord, end to end (the signed Interactions endpoint) ------------------------------------

DISCORD_RULES = (
    "channels: {room: {discord: '555555555555555555'}}\n"
    "rules:\n"
    "  - id: above-cr\n"
    "    symbols: [BTCUSDT]\n"
    "    when: {above: call_resistance}\n"
    "    notify: [room]\n"
)
DISCORD_CHANNEL, DISCORD_TRADER, DISCORD_STRANGER = (
    "555555555555555555",
    "333333333333333333",
    "444444444444444444",
)


async def test_discord_buttons_over_the_interactions_endpoint(
    db: Engine, client: BackQuantClient
) -> None:
    import httpx
    from aiohttp import web
    from nacl.signing import SigningKey

    from gexbot.app import build_discord_commands
    from gexbot.store.tables import outbox
    from tests.fakes import FakeDiscord

    key = SigningKey.generate()
    discord = FakeDiscord()
    await discord.start()
    settings = chat_settings(
        discord_bot_token=discord.token,
        discord_api_url=discord.api_url,
        discord_application_id=discord.application_id,
        discord_public_key=key.verify_key.encode().hex(),
        discord_allowed_users=[DISCORD_TRADER],
    )
    desk = ButtonDesk(
        db,
        client,
        settings,
        build_ruleset([parse_rule_file(DISCORD_RULES, "rules.yaml")]),
        "discord",
    )
    commands = build_discord_commands(
        settings,
        chat=desk.chat,
        leadership=SoleInstance("r1"),
        notifiers=desk.notifiers,
        runtime=real_runtime(),
        presses=desk.presses,
    )
    assert commands is not None
    assert commands.interactions is not None
    app = web.Application()
    commands.interactions.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/discord/interactions"

    async def press(
        custom_id: str, user: str, message: dict[str, Any], *, menu: bool = False
    ) -> Any:
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": 3 if menu else 2}
        if menu:
            data = {"custom_id": custom_id.rsplit(":", 1)[0] + ":menu", "values": [custom_id]}
        body = json.dumps(
            {
                "type": 3,
                "id": "9",
                "application_id": discord.application_id,
                "token": "tok",
                "channel_id": DISCORD_CHANNEL,
                "member": {"user": {"id": user, "username": "ana"}},
                "message": message,
                "data": data,
            }
        ).encode()
        stamp = str(int(time.time()))
        signature = key.sign(stamp.encode() + body).signature.hex()
        async with httpx.AsyncClient() as http:
            resp = await http.post(
                url,
                content=body,
                headers={"X-Signature-Ed25519": signature, "X-Signature-Timestamp": stamp},
            )
        assert resp.status_code == 200
        return resp.json()

    try:
        await desk.alert()
        (sent,) = [p for p in discord.posts if p.path.startswith("/channels/")]
        with db.connect() as conn:
            message_id = conn.execute(select(outbox.c.provider_message_id)).scalar_one()
        message = {**sent.payload, "id": message_id}
        buttons, menu = sent.payload["components"]
        ids = {c["label"]: c["custom_id"] for c in buttons["components"]}
        assert list(ids) == ["Snooze 1h", "Chart", "Levels"]
        options = {o["label"]: o["value"] for o in menu["components"][0]["options"]}
        assert list(options) == ["4 hours", "1 day", "until 08:00 UTC tomorrow"]
        assert all(len(v) <= 100 for v in [*ids.values(), *options.values()])  # Discord's limit
        snoozed = await press(ids["Snooze 1h"], DISCORD_TRADER, message)
        refused = await press(options["1 day"], DISCORD_STRANGER, message, menu=True)
        muted = await press(options["4 hours"], DISCORD_TRADER, message, menu=True)
        levels = await press(ids["Levels"], DISCORD_TRADER, message)
        await until(
            lambda: len([p for p in discord.posts if p.path.startswith("/channels/")]) >= 2,
            timeout=10,
            what="the levels reply",
        )
    finally:
        await commands.interactions.close()
        await runner.cleanup()
        await desk.close()
        await discord.stop()
    assert snoozed["type"] == 7  # the message itself, edited
    assert snoozed["data"]["embeds"][0]["fields"][-1] == {
        "name": "Done",
        "value": "Snoozed 1h by @ana, until 13:00 UTC",
    }
    assert snoozed["data"]["components"] == sent.payload["components"]
    assert refused["type"] == 4
    assert refused["data"]["flags"] == 64  # only the presser sees it
    assert refused["data"]["content"] == "You are not allowed to command this bot."
    assert muted["data"]["embeds"][0]["fields"][-1]["value"].startswith("Muted 4h by @ana")
    assert levels["data"]["content"] == "Levels for BTCUSDT"
    reply = [p for p in discord.posts if p.path.startswith("/channels/")][1]
    assert reply.payload["message_reference"]["message_id"] == message_id
    assert "BTCUSDT" in reply.payload["content"]


async def test_discord_buttons_over_the_gateway(db: Engine, client: BackQuantClient) -> None:
    from gexbot.adapters.discord import DiscordRest, use_api
    from gexbot.chat.discord import DiscordGateway, DiscordInteractions
    from gexbot.store.tables import alert_buttons
    from tests.fakes import FakeDiscord

    discord = FakeDiscord()
    await discord.start()
    use_api(discord.api_url)
    rest = DiscordRest(discord.token, timeout=5)
    rules = build_ruleset([parse_rule_file(DISCORD_RULES, "rules.yaml")])
    settings = chat_settings()

    async def no_chart(_symbol: str) -> bytes:
        return b"\x89PNG fake"

    now = datetime.now(UTC)
    chat = chat_service(settings, db, client, rules=rules, charts=no_chart)
    presses = ButtonPresses(db, rules=lambda: rules, service=chat, clock=lambda: now)
    with db.begin() as conn:
        fingerprint = presses.fingerprint("above-cr", conn)
        assert fingerprint is not None
        token = button_token(
            conn,
            outbox_id=1,
            alert_key="above-cr|BTCUSDT",
            rule_id="above-cr",
            symbol="BTCUSDT",
            fingerprint=fingerprint,
            platform="discord",
            chat_id=DISCORD_CHANNEL,
            now=now,
        )
        assert conn.execute(select(alert_buttons.c.token)).scalar_one() == token
    interactions = DiscordInteractions(
        chat, rest, public_key=None, wall_clock=time.time, presses=presses
    )
    gateway = DiscordGateway(interactions, rest, discord.token, leader=lambda: True)
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    user = {"id": DISCORD_TRADER, "username": "ana", "discriminator": "0", "avatar": None}
    message = {
        "id": "1300000000000000001",
        "channel_id": DISCORD_CHANNEL,
        "author": {
            "id": discord.application_id,
            "username": "gexbot",
            "discriminator": "0",
            "avatar": None,
            "bot": True,
        },
        "content": "alert",
        "timestamp": "2026-12-08T12:00:00+00:00",
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [{"title": "BTCUSDT above call resistance", "type": "rich"}],
        "pinned": False,
        "type": 0,
        "components": [
            {
                "type": 1,
                "components": [
                    {
                        "type": 2,
                        "style": 1,
                        "label": "Snooze 1h",
                        "custom_id": button_data(token, Action.SNOOZE),
                    }
                ],
            }
        ],
    }
    try:
        await until(lambda: discord.gateways, timeout=10, what="a Gateway session")
        await discord.push_interaction(
            {
                "type": 3,
                "id": "901",
                "application_id": discord.application_id,
                "token": "tok-press",
                "channel_id": DISCORD_CHANNEL,
                # What Discord sends beside channel_id, and what discord.py reads the channel from.
                "channel": {"id": DISCORD_CHANNEL, "type": 1, "recipients": [user]},
                "user": user,
                "message": message,
                "data": {"custom_id": button_data(token, Action.SNOOZE), "component_type": 2},
            }
        )
        await until(lambda: discord.to("tok-press"), timeout=10, what="the Gateway answer")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await interactions.close()
        await rest.close()
        await discord.stop()
    answer = discord.to("tok-press")[0]
    assert answer.path == "/interactions/901/tok-press/callback"
    assert answer.payload["type"] == 7
    assert answer.payload["data"]["embeds"][0]["fields"][-1]["value"].startswith(
        "Snoozed 1h by @ana, until"
    )
    with db.connect() as conn:
        assert [(m.scope, m.target) for m in active_mutes(conn, now=now)] == [
            (Scope.ALERT, "above-cr@BTCUSDT")
        ]


async def test_a_personal_alert_is_deleted_from_its_own_chat_only(
    db: Engine, client: BackQuantClient
) -> None:
    from gexbot.core.personal.grammar import PersonalAlert, parse_alert
    from gexbot.store.personal import create_alert, list_alerts

    now = T0
    with db.begin() as conn:
        alert = create_alert(
            conn,
            platform="telegram",
            chat_id="111",
            owner="111",
            request=parse_alert("btc crosses hvl"),
            now=now,
            limit=25,
        )
    assert isinstance(alert, PersonalAlert)
    settings = chat_settings()

    async def no_chart(_symbol: str) -> bytes:
        return b""

    chat = chat_service(settings, db, client, rules=_rules(), charts=no_chart)
    presses = ButtonPresses(db, rules=_rules, service=chat, clock=lambda: now)
    with db.begin() as conn:
        fingerprint = presses.fingerprint(alert.rule_id, conn)
        assert fingerprint is not None
        token = button_token(
            conn,
            outbox_id=7,
            alert_key=f"{alert.rule_id}|BTCUSDT",
            rule_id=alert.rule_id,
            symbol="BTCUSDT",
            fingerprint=fingerprint,
            platform="telegram",
            chat_id="111",
            now=now,
        )
    data = button_data(token, Action.DELETE)
    assert Action.DELETE in actions_for(alert.rule_id)
    elsewhere = await presses.press(
        data, platform="telegram", chat_id="222", user="222", who="@bo", allowed=True
    )
    assert elsewhere.verdict is Verdict.FOREIGN
    done = await presses.press(
        data, platform="telegram", chat_id="111", user="111", who="@ana", allowed=True
    )
    assert done.line == "Deleted by @ana"
    with db.connect() as conn:
        assert list_alerts(conn) == []
    # Its other buttons are no longer current: the alert is gone.
    after = await presses.press(
        button_data(token, Action.SNOOZE),
        platform="telegram",
        chat_id="111",
        user="111",
        who="@ana",
        allowed=True,
    )
    assert after.toast == "This alert is no longer current."


async def test_the_chart_button_posts_the_chart_in_the_alerts_thread(
    db: Engine, client: BackQuantClient
) -> None:
    telegram = FakeTelegram()
    await telegram.start()
    desk = Desk(db, telegram, client)
    try:
        await desk.alert()
        (alert,) = telegram.messages
        chart = alert.button("Chart")
        telegram.push_press(chart, user=TRADER, message=alert, username="ana")
        telegram.push_press(chart, user=TRADER, message=alert, username="ana")  # once only
        await desk.presses_answered(telegram, 2)
        await until(lambda: telegram.photos, timeout=10, what="the chart")
    finally:
        await desk.close()
        await telegram.stop()
    assert [a["text"] for a in telegram.answers] == [
        "Chart for BTCUSDT",
        "Chart: already sent in this thread.",
    ]
    assert telegram.photos == [("111", b"\x89PNG fake")]
    assert telegram.photo_replies == [alert.message_id]
    caption = telegram.messages[1]
    assert caption.text == "BTCUSDT levels chart"
    assert caption.reply_to == alert.message_id
    assert telegram.edits == []  # a chart changes nothing on the alert
