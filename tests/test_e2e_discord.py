"""Discord through the real process: `gexbot run` against a fake Discord over real HTTP.

One run: `/gex` registered at start; a rule's alert posted to its channel as an embed with the
chart attached; the signed Interactions endpoint answering PING, refusing a bad signature and a
user not allowed, answering `/gex levels btc` privately with the chart following, creating a
personal alert with `/gex alert` that then fires in the channel it was made in; the token never
in the logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey

from tests.fakes import FakeDiscord
from tests.processes import bot_env, clean_env, sim_server
from tests.test_crash import crossing_scenario
from tests.test_e2e import _start
from tests.test_e2e_chat import _free_port
from tests.waiting import eventually, until

APP = "111111111111111111"
DESK = "123456789012345678"
TRADER, STRANGER = "333333333333333333", "444444444444444444"
ROOM = "555555555555555555"  # where the trader types commands
KEY = SigningKey.generate()
RULES = f"""
channels:
  desk: {{discord: "{DESK}"}}
rules:
  - id: hvl-cross
    symbols: [BTCUSDT]
    when: {{crosses: hvl}}
    notify: desk
    cooldown: 1h
    chart: true
"""


def _command(sub: str, value: str | None, *, user: str, token: str) -> dict[str, Any]:
    option: dict[str, Any] = {"name": sub, "type": 1}
    if value is not None:
        option["options"] = [{"name": "v", "type": 3, "value": value}]
    return {
        "type": 2,
        "id": token,
        "application_id": APP,
        "token": token,
        "channel_id": ROOM,
        "member": {"user": {"id": user}},
        "data": {"name": "gex", "type": 1, "options": [option]},
    }


async def _post(port: int, payload: dict[str, Any], *, good: bool = True) -> httpx.Response:
    body = json.dumps(payload).encode()
    ts = str(int(time.time()))
    signature = KEY.sign(ts.encode() + body).signature.hex() if good else "00" * 64
    headers = {"X-Signature-Ed25519": signature, "X-Signature-Timestamp": ts}
    async with httpx.AsyncClient(timeout=10) as http:

        async def attempt() -> httpx.Response | None:
            try:
                return await http.post(
                    f"http://127.0.0.1:{port}/discord/interactions", content=body, headers=headers
                )
            except httpx.ConnectError:  # the port opens a moment after start-up
                return None

        return await eventually(attempt, timeout=30, what="the Interactions endpoint to open")


def _answer(discord: FakeDiscord, resp: httpx.Response, token: str) -> str | None:
    """The reply's text: in the response, or edited in after a deferral."""
    body = resp.json()
    if body["type"] == 4:
        return str(body["data"]["content"])
    edits = [p for p in discord.to(token) if p.method == "PATCH"]
    return str(edits[0].payload["content"]) if edits else None


@pytest.mark.slow
async def test_discord_from_the_real_process(tmp_path: Path) -> None:
    (tmp_path / "scenario.yaml").write_text(crossing_scenario(240))  # a cross every second
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    upstream = contextlib.ExitStack()
    url = upstream.enter_context(
        sim_server("--scenario", "scenario.yaml", env=clean_env(), cwd=tmp_path)
    )
    discord = FakeDiscord(application_id=APP)
    await discord.start()
    port = _free_port()
    env = bot_env(
        tmp_path,
        url,
        GEXBOT_DISCORD_BOT_TOKEN=discord.token,
        GEXBOT_DISCORD_API_URL=discord.api_url,
        GEXBOT_DISCORD_APPLICATION_ID=APP,
        GEXBOT_DISCORD_PUBLIC_KEY=KEY.verify_key.encode().hex(),
        GEXBOT_DISCORD_ALLOWED_USERS=TRADER,
        GEXBOT_HTTP_PORT=str(port),
    )
    bot = await _start("run", env=env, cwd=tmp_path)
    try:
        assert (await _post(port, {"type": 1})).json() == {"type": 1}
        assert (await _post(port, {"type": 1}, good=False)).status_code == 401
        await until(lambda: discord.commands, timeout=15, what="the /gex registration")

        # A rule's alert, as an embed, and its chart as a file.
        await until(lambda: len(discord.to(DESK)) >= 2, timeout=30, what="alert and chart")
        alert, chart = discord.to(DESK)[:2]
        assert "BTCUSDT" in alert.payload["embeds"][0]["title"]
        assert alert.payload["allowed_mentions"] == {"parse": []}
        assert chart.files["files[0]"].startswith(b"\x89PNG")

        # Commands: a stranger is refused; the trader gets levels, privately, and the chart.
        refused = await _post(port, _command("levels", "btc", user=STRANGER, token="t-refused"))
        assert "BTCUSDT" not in refused.text
        assert refused.json()["data"]["flags"] == 64
        levels = await _post(port, _command("levels", "btc", user=TRADER, token="t-levels"))
        assert levels.json()["type"] in (4, 5)
        await until(
            lambda: (_answer(discord, levels, "t-levels") or "").count("BTCUSDT"),
            timeout=15,
            what="the levels reply",
        )
        await until(
            lambda: any(p.files for p in discord.to("t-levels")),
            timeout=30,
            what="the levels chart follow-up",
        )

        # A personal alert made in ROOM fires in ROOM.
        made = await _post(port, _command("alert", "btc crosses hvl", user=TRADER, token="t-alert"))
        await until(
            lambda: _answer(discord, made, "t-alert"), timeout=15, what="the creation reply"
        )
        created = _answer(discord, made, "t-alert") or ""
        assert created.startswith("Alert #1"), created
        await until(lambda: discord.to(ROOM), timeout=30, what="the personal alert")
        (personal, *_) = discord.to(ROOM)
        assert "alert #1" in json.dumps(personal.payload)
        bot.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(bot.communicate(), timeout=20)
        assert bot.returncode == 0
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
        upstream.close()
        await discord.stop()
    assert discord.token not in err.decode()


@pytest.mark.slow
async def test_discord_commands_over_the_gateway_from_the_real_process(tmp_path: Path) -> None:
    """No public URL: GEXBOT_DISCORD_GATEWAY=true, a command pushed on the fake Gateway."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    discord = FakeDiscord(application_id=APP)
    await discord.start()
    env = bot_env(
        tmp_path,
        "http://127.0.0.1:9",  # no upstream needed to answer `rules`
        GEXBOT_DISCORD_BOT_TOKEN=discord.token,
        GEXBOT_DISCORD_API_URL=discord.api_url,
        GEXBOT_DISCORD_GATEWAY="true",
        GEXBOT_DISCORD_ALLOWED_USERS=TRADER,
    )
    bot = await _start("run", env=env, cwd=tmp_path)
    try:
        await until(lambda: discord.gateways, timeout=20, what="the Gateway session")
        user = {"id": TRADER, "username": "t", "discriminator": "0", "avatar": None}
        # A malformed event (an id that is not a snowflake) costs a reconnect, not the bot.
        await discord.push_interaction({**_command("rules", None, user=TRADER, token="bad")})
        await until(lambda: discord.identified >= 2, timeout=30, what="a new Gateway session")
        await until(lambda: discord.gateways, timeout=20, what="the session open")
        dm = _command("rules", None, user=TRADER, token="t-rules")
        dm.update(id="900000000000000001", member=None, user=user)  # typed in a DM
        await discord.push_interaction(dm)
        await until(lambda: discord.to("t-rules"), timeout=15, what="the Gateway reply")
        (reply,) = discord.to("t-rules")
        assert reply.path == "/interactions/900000000000000001/t-rules/callback"
        assert "hvl-cross" in reply.payload["data"]["content"]
        assert reply.payload["data"]["flags"] == 64
        bot.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(bot.communicate(), timeout=20)
        assert bot.returncode == 0
    finally:
        if bot.returncode is None:
            bot.kill()
            print((await bot.communicate())[1].decode())  # the bot's log, for the failure
        await discord.stop()
    assert not discord.gateways
    assert discord.token not in err.decode()
