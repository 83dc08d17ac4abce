"""Personal alerts from chat: `alert`, `alerts`, `unalert` over the real Telegram and Slack
clients against the local fakes, with the preview replayed on the simulator's history."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Engine

from gexbot.adapters.backquant import BackQuantClient, build_http_client
from gexbot.app import utcnow
from gexbot.chat.service import ChatService
from gexbot.core.language.rulefile import build_ruleset, parse_rule_file
from gexbot.settings import Settings
from gexbot.sim.market import Simulator
from gexbot.sim.server import SimServer
from gexbot.store.ops import active_mutes
from gexbot.store.personal import list_alerts
from tests.chatkit import chat_service, chat_settings, slack_commands, telegram_commands
from tests.fakes import FakeSlack, FakeTelegram
from tests.waiting import until

TRADER, OTHER, STRANGER = 111, 222, 999
RULES = build_ruleset(
    [
        parse_rule_file(
            "channels: {tty: {terminal: true}}\n"
            "rules: [{id: hvl-regime, when: {crosses: hvl}, notify: tty}]\n",
            "r.yaml",
        )
    ]
)


@pytest.fixture
async def client() -> AsyncIterator[BackQuantClient]:
    sim = SimServer(Simulator(clock=time.time), api_key="k")
    await sim.start()
    async with build_http_client(sim.url, "k") as http:
        yield BackQuantClient(http, wall_clock=time.time, api_key="k", rng=random.Random(0))
    await sim.stop()


def _service(settings: Settings, db: Engine, client: BackQuantClient) -> ChatService:
    async def no_chart(_symbol: str) -> bytes:
        raise AssertionError("no chart is asked for here")

    return chat_service(settings, db, client, rules=RULES, charts=no_chart)


async def _telegram(
    db: Engine, client: BackQuantClient, telegram: FakeTelegram, n: int, *, per_chat: int = 25
) -> None:
    """Run the command loop until `n` messages went out."""
    settings = chat_settings(
        telegram=telegram,
        telegram_allowed_users=[TRADER, OTHER],
        chat_alerts_per_chat=per_chat,
    )
    loop = telegram_commands(settings, db, _service(settings, db, client))
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        await until(lambda: len(telegram.messages) >= n, timeout=20, what=f"{n} replies")
    finally:
        stop.set()
        await task


async def test_a_trader_creates_lists_mutes_and_deletes_alerts_in_telegram(
    db: Engine, client: BackQuantClient
) -> None:
    telegram = FakeTelegram()
    await telegram.start()
    try:
        telegram.push_command("/alert btc crosses hvl", user=TRADER)
        telegram.push_command("/alert eth near cr", user=TRADER)  # mistyped: nothing stored
        telegram.push_command("/alert sol below 150 once", user=OTHER)
        telegram.push_command("/alert btc crosses hvl", user=STRANGER)  # refused
        telegram.push_command("/alerts", user=TRADER)
        telegram.push_command("/mute #1 1h", user=TRADER)
        telegram.push_command("/unalert #2", user=TRADER)  # the other chat's
        telegram.push_command("/mute #2 1h", user=TRADER)
        telegram.push_command("/unalert #1", user=TRADER)
        telegram.push_command("/alerts", user=TRADER)
        await _telegram(db, client, telegram, 10)
        assert [c["command"] for c in telegram.commands[0]][-4:] == [
            "alert",
            "alerts",
            "unalert",
            "help",
        ]
    finally:
        await telegram.stop()

    created, mistyped, listed, muted, not_mine, not_mine_mute, deleted, empty = telegram.replies_to(
        TRADER
    )
    assert created.startswith("Alert #1 set: BTCUSDT crosses its HVL (dead band 0.1%).\n")
    preview = created.splitlines()[1]
    assert re.fullmatch(
        r"Preview \(\w{3} \d\d \d\d:\d\d – \w{3} \d\d \d\d:\d\d UTC, [\w. ]+ of BackQuant stress "
        r"history\): it would (not have fired|have fired (once|\d+ times), last on .+ UTC)\.",
        preview,
    ), preview
    assert "/unalert #1" in created
    assert mistyped == "near needs a band: near cr 0.5%"
    assert listed.splitlines() == [
        "1 alert in this chat:",
        "• #1 BTCUSDT crosses its HVL (dead band 0.1%) · not fired yet",
    ]
    assert muted == "Muted rule #1 for 1h. Alerts are recorded, not sent."
    assert not_mine == "This chat has no alert #2. See /alerts."
    assert not_mine_mute == "This chat has no alert #2. See /alerts."
    assert deleted == "Deleted alert #1."
    assert empty.startswith("This chat has no alerts.")
    (other,) = telegram.replies_to(OTHER)
    assert other.startswith("Alert #2 set: SOLUSDT goes below 150, once (then deleted).")
    assert telegram.replies_to(STRANGER) == ["Sorry, this bot only answers its desk."]
    with db.connect() as conn:
        left = list_alerts(conn)
        mutes = active_mutes(conn, now=utcnow())
    assert [(a.id, a.chat_id, a.owner, a.request.canonical()) for a in left] == [
        (2, str(OTHER), str(OTHER), "SOLUSDT below 150 once")
    ]
    assert [(m.scope, m.target) for m in mutes] == [("rule", "#1")]


async def test_a_chat_past_its_limit_is_told_and_nothing_is_stored(
    db: Engine, client: BackQuantClient
) -> None:
    telegram = FakeTelegram()
    await telegram.start()
    try:
        for text in ("btc crosses hvl", "eth crosses hvl", "sol crosses hvl"):
            telegram.push_command(f"/alert {text}", user=TRADER)
        await _telegram(db, client, telegram, 3, per_chat=2)
    finally:
        await telegram.stop()
    *_, refused = telegram.replies_to(TRADER)
    assert refused.startswith("This chat already has 2 alerts, the most it may have")
    with db.connect() as conn:
        assert [a.request.symbol for a in list_alerts(conn)] == ["BTCUSDT", "ETHUSDT"]


async def test_slack_alerts_belong_to_the_channel_they_were_typed_in(
    db: Engine, client: BackQuantClient
) -> None:
    slack = FakeSlack()
    await slack.start()
    settings = chat_settings(slack=slack)
    commands = slack_commands(settings, db, _service(settings, db, client))
    stop = asyncio.Event()
    task = asyncio.create_task(commands.run(stop))
    try:
        made = await slack.envelope(
            "slash_commands",
            {
                "command": "/gex",
                "text": "alert eth near cr 0.5%",
                "user_id": "U1",
                "channel_id": "C1",
            },
        )
        assert made["payload"]["text"].startswith(
            "Alert #1 set: ETHUSDT comes within 0.5% of its call resistance."
        )
        elsewhere = await slack.envelope(
            "slash_commands",
            {"command": "/gex", "text": "unalert all", "user_id": "U1", "channel_id": "C2"},
        )
        assert elsewhere["payload"]["text"] == "This chat has no alerts."
    finally:
        stop.set()
        await task
        await slack.stop()
    with db.connect() as conn:
        (alert,) = list_alerts(conn)
    assert (alert.platform, alert.chat_id, alert.owner, alert.channel) == (
        "slack",
        "C1",
        "U1",
        "slack:C1",
    )


async def test_status_counts_the_personal_alerts_per_platform(
    db: Engine, client: BackQuantClient
) -> None:
    service = _service(chat_settings(), db, client)
    for chat, platform in (("1", "telegram"), ("2", "telegram"), ("C1", "slack")):
        await service.answer("alert btc crosses hvl", platform=platform, chat_id=chat, user="u")
    status = await service.answer("status", platform="telegram", chat_id="1", user="u")
    assert "Personal alerts: 3 (1 slack, 2 telegram)" in status.text.splitlines()
