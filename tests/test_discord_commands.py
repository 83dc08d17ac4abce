"""Discord `/gex`: the registration and reading of interactions (pure), and the signed
Interactions endpoint over real HTTP, replying through discord.py to a fake Discord."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from nacl.signing import SigningKey

from gexbot.adapters.discord import DiscordRest, use_api
from gexbot.chat.discord import DiscordGateway, DiscordInteractions, register_commands
from gexbot.chat.service import REFUSAL, Reply
from gexbot.core.commands.chat import CommandName
from gexbot.core.commands.slash import read_invocation, registration, reply_data
from tests.fakes import FakeDiscord
from tests.waiting import until

APP = "111111111111111111"
TRADER, STRANGER = "333333333333333333", "444444444444444444"
CHANNEL = "555555555555555555"
KEY = SigningKey.generate()


def _interaction(sub: str, value: str | None = None, *, user: str = TRADER) -> dict[str, Any]:
    option = {"name": sub, "type": 1}
    if value is not None:
        option["options"] = [{"name": "x", "type": 3, "value": value}]
    return {
        "type": 2,
        "id": "1",
        "application_id": APP,
        "token": f"tok-{sub}",
        "channel_id": CHANNEL,
        "member": {"user": {"id": user}},
        "data": {"name": "gex", "type": 1, "options": [option]},
    }


# -- pure ---------------------------------------------------------------------------------------


def test_one_gex_command_with_a_sub_command_for_every_chat_command() -> None:
    (gex,) = registration()
    assert gex["name"] == "gex"
    subs = {s["name"]: s for s in gex["options"]}
    assert set(subs) == {c.value for c in CommandName}
    assert all(s["type"] == 1 and 0 < len(s["description"]) <= 100 for s in subs.values())
    (condition,) = subs["alert"]["options"]
    assert condition["type"] == 3
    assert condition["required"] is True
    assert "options" not in subs["status"]
    assert subs["levels"]["options"][0]["required"] is False


def test_an_interaction_reads_as_the_command_a_trader_would_type() -> None:
    inv = read_invocation(_interaction("alert", "btc crosses hvl once"))
    assert inv is not None
    assert inv.text == "alert btc crosses hvl once"
    assert (inv.user, inv.channel, inv.application_id) == (TRADER, CHANNEL, APP)
    dm = {**_interaction("status"), "member": None, "user": {"id": STRANGER}}
    dm_inv = read_invocation(dm)
    assert dm_inv is not None
    assert (dm_inv.text, dm_inv.user) == ("status", STRANGER)
    assert read_invocation({**_interaction("status"), "data": {"name": "other"}}) is None
    long = read_invocation(_interaction("alert", "x" * 5000))
    assert long is not None
    assert len(long.text) <= 220


def test_a_reply_is_private_pings_no_one_and_fits() -> None:
    table = reply_data("BTC ```x```\n" + "row\n" * 1000, monospace=True)
    assert table["flags"] == 64
    assert table["allowed_mentions"] == {"parse": []}
    assert table["content"].startswith("```\n")
    assert table["content"].endswith("\n```")
    assert table["content"].count("```") == 2
    assert len(table["content"]) <= 2000
    assert len(reply_data("y" * 3000, monospace=False)["content"]) == 2000


# -- over HTTP ----------------------------------------------------------------------------------


@dataclass
class Answers:
    """Stands in for the ChatService: a canned reply per command, optionally slow."""

    delay: float = 0.0
    chart: bytes | None = None
    asked: list[tuple[str, str, str]] = field(default_factory=list)

    async def answer(self, text: str, *, platform: str, chat_id: str, user: str) -> Reply:
        self.asked.append((text, platform, chat_id))
        await asyncio.sleep(self.delay)
        png = self.chart

        async def chart() -> bytes | None:
            return png

        return Reply(f"answer to {text}", monospace=text == "levels", chart=chart)


@dataclass
class Endpoint:
    url: str
    discord: FakeDiscord
    answers: Answers

    async def post(
        self,
        payload: dict[str, Any] | bytes,
        *,
        sign: Callable[[bytes, str], str] | None = None,
        at: float | None = None,
    ) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        ts = str(int(time.time() if at is None else at))
        signature = (sign or _sign)(body, ts)
        headers = {"X-Signature-Ed25519": signature, "X-Signature-Timestamp": ts}
        async with httpx.AsyncClient() as http:
            return await http.post(self.url, content=body, headers=headers)


def _sign(body: bytes, ts: str) -> str:
    return KEY.sign(ts.encode() + body).signature.hex()


Start = Callable[..., Awaitable[Endpoint]]


@pytest.fixture
async def endpoint() -> AsyncIterator[Start]:
    discord = FakeDiscord(application_id=APP)
    await discord.start()
    use_api(discord.api_url)
    rest = DiscordRest(discord.token, timeout=5)
    runners: list[tuple[web.AppRunner, DiscordInteractions]] = []

    async def start(answers: Answers, **kw: Any) -> Endpoint:
        interactions = DiscordInteractions(
            answers,
            rest,
            public_key=KEY.verify_key.encode().hex(),
            wall_clock=time.time,
            **kw,
        )
        app = web.Application()
        interactions.add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append((runner, interactions))
        port = runner.addresses[0][1]
        return Endpoint(f"http://127.0.0.1:{port}/discord/interactions", discord, answers)

    yield start
    for runner, interactions in runners:
        await interactions.close()
        await runner.cleanup()
    await rest.close()
    await discord.stop()


async def test_a_ping_gets_a_pong(endpoint: Start) -> None:
    ep = await endpoint(Answers())
    resp = await ep.post({"type": 1})
    assert resp.status_code == 200
    assert resp.json() == {"type": 1}


@pytest.mark.parametrize(
    "how",
    ["unsigned", "wrong key", "other body", "stale", "not hex", "future"],
)
async def test_a_request_without_a_good_recent_signature_gets_401(
    endpoint: Start, how: str
) -> None:
    ep = await endpoint(Answers())
    other = SigningKey.generate()
    now = time.time()
    signs: dict[str, Callable[[bytes, str], str]] = {
        "unsigned": lambda _b, _t: "",
        "wrong key": lambda b, t: other.sign(t.encode() + b).signature.hex(),
        "other body": lambda _b, t: _sign(b'{"type": 1}', t),
        "stale": _sign,
        "not hex": lambda _b, _t: "zz" * 64,
        "future": _sign,
    }
    at = {"stale": now - 360, "future": now + 360}.get(how)  # well past the 300 s
    resp = await ep.post(_interaction("status"), sign=signs[how], at=at)
    assert resp.status_code == 401
    assert ep.answers.asked == []


async def test_a_command_is_answered_privately_and_its_chart_follows(endpoint: Start) -> None:
    ep = await endpoint(Answers(chart=b"\x89PNG-chart"))
    resp = await ep.post(_interaction("levels"))
    assert resp.status_code == 200
    body = resp.json()
    assert body["type"] == 4
    assert body["data"]["flags"] == 64
    assert body["data"]["content"] == "```\nanswer to levels\n```"
    assert ep.answers.asked == [("levels", "discord", CHANNEL)]
    await until(lambda: ep.discord.to("tok-levels"), timeout=5, what="the chart follow-up")
    (follow,) = ep.discord.to("tok-levels")
    assert follow.path == f"/webhooks/{APP}/tok-levels"
    assert follow.files == {"files[0]": b"\x89PNG-chart"}
    assert follow.payload["flags"] == 64


async def test_a_slow_answer_is_deferred_then_edited_in(endpoint: Start) -> None:
    ep = await endpoint(Answers(delay=0.6), answer_within=0.1)
    resp = await ep.post(_interaction("alert", "btc crosses hvl"))
    # A deferral (type 5), not the answer: the response did not wait for the 0.6 s answer.
    assert resp.json() == {"type": 5, "data": {"flags": 64}}
    await until(lambda: ep.discord.to("tok-alert"), timeout=5, what="the edited reply")
    (edit,) = [p for p in ep.discord.to("tok-alert") if p.method == "PATCH"]
    assert edit.path == f"/webhooks/{APP}/tok-alert/messages/@original"
    assert edit.payload["content"] == "answer to alert btc crosses hvl"


async def test_a_user_not_allowed_gets_a_private_refusal_and_no_data(endpoint: Start) -> None:
    ep = await endpoint(Answers(), allowed_users=[TRADER])
    resp = await ep.post(_interaction("levels", "btc", user=STRANGER))
    assert resp.json()["data"]["content"] == REFUSAL
    assert resp.json()["data"]["flags"] == 64
    assert ep.answers.asked == []
    ok = await ep.post(_interaction("status"))
    assert ok.json()["data"]["content"] == "answer to status"


async def test_what_is_not_a_gex_command_is_refused(endpoint: Start) -> None:
    ep = await endpoint(Answers())
    assert (await ep.post({**_interaction("status"), "data": {"name": "x"}})).status_code == 400
    assert (await ep.post(b"[1, 2]")).status_code == 400
    assert (await ep.post(b"not json")).status_code == 400


async def test_registration_is_a_bulk_overwrite_and_idempotent() -> None:
    discord = FakeDiscord(application_id=APP)
    await discord.start()
    use_api(discord.api_url)
    rest = DiscordRest(discord.token, timeout=5)
    try:
        assert await register_commands(rest, APP)
        assert await register_commands(rest, APP)
    finally:
        await rest.close()
        await discord.stop()
    first, second = discord.commands
    assert first == second == json.loads(json.dumps(registration()))


# -- over the Gateway ---------------------------------------------------------------------------


def _from_a_server(sub: str, interaction_id: str) -> dict[str, Any]:
    """A command typed in a server, as the Gateway sends it (a full member object)."""
    user = {
        "id": TRADER,
        "username": "trader",
        "discriminator": "0",
        "avatar": None,
        "global_name": "Trader",
    }
    member = {
        "user": user,
        "roles": [],
        "joined_at": "2026-01-01T00:00:00+00:00",
        "deaf": False,
        "mute": False,
        "flags": 0,
        "permissions": "0",
    }
    return {
        **_interaction(sub),
        "id": interaction_id,
        "guild_id": "777777777777777777",
        "member": member,
    }


async def test_the_gateway_answers_commands_on_the_leader_only() -> None:
    discord = FakeDiscord(application_id=APP)
    await discord.start()
    use_api(discord.api_url)
    rest = DiscordRest(discord.token, timeout=5)
    answers = Answers(chart=b"\x89PNG-gw")
    interactions = DiscordInteractions(answers, rest, public_key=None, wall_clock=time.time)
    leading = True
    gateway = DiscordGateway(interactions, rest, discord.token, leader=lambda: leading)
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    try:
        await until(lambda: discord.gateways, timeout=10, what="a Gateway session")
        assert await discord.push_interaction(_from_a_server("levels", "900")) == 1
        await until(lambda: discord.to("tok-levels"), timeout=10, what="the Gateway reply")
        reply = discord.to("tok-levels")[0]
        assert reply.path == "/interactions/900/tok-levels/callback"
        assert reply.payload["type"] == 4
        assert reply.payload["data"]["content"] == "```\nanswer to levels\n```"
        assert reply.payload["data"]["flags"] == 64
        await until(
            lambda: any(p.files for p in discord.to("tok-levels")),
            timeout=10,
            what="the chart follow-up",
        )
        leading = False  # a standby holds no Gateway session
        await until(lambda: not discord.gateways, timeout=10, what="the session closed")
        assert discord.identified == 1
        leading = True
        await until(lambda: discord.gateways, timeout=10, what="a new session")
        assert discord.identified == 2
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await interactions.close()
        await rest.close()
        await discord.stop()
    assert not discord.gateways


async def test_a_refused_token_stops_the_gateway_attempts() -> None:
    discord = FakeDiscord(application_id=APP)
    await discord.start()
    use_api(discord.api_url)
    rest = DiscordRest("wrong", timeout=5)
    interactions = DiscordInteractions(Answers(), rest, public_key=None, wall_clock=time.time)
    gateway = DiscordGateway(interactions, rest, "wrong", leader=lambda: True)
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    try:
        await until(lambda: gateway.refused, timeout=10, what="the refusal taken as final")
        assert discord.requests == 1
        assert not task.done()  # waits for the stop, quietly
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await rest.close()
        await discord.stop()
    assert discord.identified == 0


def test_a_signature_is_good_for_five_minutes_either_way() -> None:
    now = 1_800_000_000.0
    check = DiscordInteractions(
        Answers(),
        DiscordRest("t"),
        public_key=KEY.verify_key.encode().hex(),
        wall_clock=lambda: now,
    )
    body = b'{"type": 1}'
    for offset, good in ((0, True), (-299, True), (299, True), (-301, False), (301, False)):
        ts = str(int(now + offset))
        assert check.verified(body, ts, _sign(body, ts)) is good, offset
    assert not check.verified(body, "12.5", _sign(body, "12.5"))
