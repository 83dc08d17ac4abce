"""`gexbot run` with Telegram commands: mute, unmute and subscribe in the real process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from tests.fakes import FakeSlack, FakeTelegram
from tests.test_e2e import _start
from tests.waiting import eventually, until

TRADER, COLLEAGUE = 111, 222
SCENARIO = """
walk: false
refresh: 1
steps:
  - {at: 0, spot: {BTCUSDT: 80000}, levels: {BTCUSDT: {hvl: 80500}}}
  - {at: 9, spot: {BTCUSDT: 81000}}
  - {at: 18, spot: {BTCUSDT: 80000}}
"""
RULES = f"""
channels:
  me: {{telegram: {TRADER}}}
rules:
  - id: hvl-regime
    symbols: [BTCUSDT]
    when: {{crosses: hvl}}
    notify: [me]
    cooldown: 0s
"""


SECRET = "e2e-signing-secret"


def _side(db: Path, rule_id: str, symbol: str) -> float | None:
    """The side of its level a crossing rule last recorded (+1 above, -1 below; None before
    the bot wrote it): the stored state an operator would read."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            row = conn.execute(
                "SELECT baseline FROM alert_state WHERE rule_id = ? AND symbol = ?",
                (rule_id, symbol),
            ).fetchone()
    except sqlite3.Error:  # not created yet, or busy mid-write
        return None
    return float(row[0]) if row and row[0] is not None else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _slack_http(port: int, text: str) -> str:
    """A slash command as Slack sends it: form-encoded and signed with the app's secret."""
    body = urlencode({"command": "/gex", "text": text, "user_id": "U1", "channel_id": "C1"})
    ts = str(int(time.time()))
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body) or ""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }
    async with httpx.AsyncClient() as http:

        async def attempt() -> httpx.Response | None:
            try:
                return await http.post(
                    f"http://127.0.0.1:{port}/slack/commands", content=body, headers=headers
                )
            except httpx.ConnectError:  # the port opens a moment after start-up
                return None

        resp = await eventually(attempt, timeout=30, what="the Slack endpoint to open")
    assert resp.status_code == 200, resp.text
    reply: str = resp.json()["text"]
    return reply


@pytest.mark.slow
async def test_mute_silences_unmute_restores_subscribe_adds_a_chat(tmp_path: Path) -> None:
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    base = {k: v for k, v in os.environ.items() if not k.startswith("GEXBOT_")}
    sim = await _start(
        "sim-server", "--port", "0", "--scenario", "scenario.yaml", env=base, cwd=tmp_path
    )
    assert sim.stdout is not None
    url = re.search(r"(http://127\.0\.0\.1:\d+)", (await sim.stdout.readline()).decode())
    assert url
    telegram, slack = FakeTelegram(), FakeSlack()
    await telegram.start()
    await slack.start()
    port = _free_port()
    env = dict(base)
    env.update(
        GEXBOT_API_URL=url.group(1),
        GEXBOT_API_KEY="demo",
        GEXBOT_SYMBOLS="BTCUSDT",
        GEXBOT_POLL_INTERVAL="1",
        GEXBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'b.db'}",
        GEXBOT_RULES=str(tmp_path / "rules"),
        GEXBOT_TELEGRAM_BOT_TOKEN=telegram.token,
        GEXBOT_TELEGRAM_API_URL=telegram.api_url,
        GEXBOT_TELEGRAM_ALLOWED_USERS=f"{TRADER},{COLLEAGUE}",
        GEXBOT_TELEGRAM_POLL_TIMEOUT="1",
        GEXBOT_SLACK_BOT_TOKEN=slack.token,
        GEXBOT_SLACK_API_URL=slack.api_url,
        GEXBOT_SLACK_SIGNING_SECRET=SECRET,
        GEXBOT_HTTP_PORT=str(port),
    )
    bot = await _start("run", env=env, cwd=tmp_path)
    try:
        telegram.push_command("/mute hvl-regime 1h", user=TRADER)
        await until(lambda: telegram.replies_to(TRADER), timeout=10, what="the trader's reply")
        # The same desk on Slack, over the signed HTTP endpoint: it sees the mute.
        assert "rule hvl-regime for" in await _slack_http(port, "status")
        # The up-cross happens at step 9 while muted; afterwards unmute and subscribe.
        await until(
            lambda: (_side(tmp_path / "b.db", "hvl-regime", "BTCUSDT") or 0) > 0,
            timeout=40,
            what="the up-cross, recorded while muted",
        )
        telegram.push_command("/unmute hvl-regime", user=TRADER)
        telegram.push_command("/subscribe BTC", user=COLLEAGUE)
        await until(lambda: telegram.replies_to(COLLEAGUE), timeout=5, what="the refusal")
        # The down-cross at step 18 reaches both chats.
        await until(
            lambda: (
                len(telegram.replies_to(COLLEAGUE)) >= 2 and len(telegram.replies_to(TRADER)) >= 3
            ),
            timeout=40,
            what="the down-cross in both chats",
        )
        bot.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(bot.communicate(), timeout=10)
        assert bot.returncode == 0
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
        sim.send_signal(signal.SIGTERM)
        await sim.wait()
        await telegram.stop()
        await slack.stop()
    trader = telegram.replies_to(TRADER)
    colleague = telegram.replies_to(COLLEAGUE)
    assert trader[0] == "Muted rule hvl-regime for 1h. Alerts are recorded, not sent."
    assert trader[1] == "Unmuted rule hvl-regime."
    assert len(trader) == 3
    assert "crossed below HVL 80,500" in trader[2]
    assert not any("crossed above" in t for t in trader + colleague)  # silenced
    assert colleague[0] == "This chat now gets BTCUSDT alerts."
    assert len(colleague) == 2
    assert "crossed below HVL 80,500" in colleague[1]
    assert "hvl-regime for BTCUSDT silenced by a mute" in err.decode()
