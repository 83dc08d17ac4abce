"""`gexbot run` with personal alerts: made in Telegram, delivered to that chat only, paused for
a chat that blocked the bot, kept across a restart, listed and removed by the operator."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.fakes import FakeTelegram
from tests.processes import sim_server
from tests.test_e2e import _start
from tests.test_e2e_chat import _free_port
from tests.waiting import until

TRADER, BLOCKER = 111, 222
# BTC sits under its HVL, crosses above at 12 s and back below at 24 s; nothing else moves.
SCENARIO = """
walk: false
refresh: 1
steps:
  - {at: 0, spot: {BTCUSDT: 80000}, levels: {BTCUSDT: {hvl: 80500}}}
  - {at: 12, spot: {BTCUSDT: 81000}}
  - {at: 24, spot: {BTCUSDT: 80000}}
"""
RULES = "channels: {tty: {terminal: true}}\nwarnings: {notify: tty}\nrules: []\n"


def _alerts_of(telegram: FakeTelegram, chat: int) -> list[str]:
    return [t for t in telegram.replies_to(chat) if " · alert #" in t]


@pytest.mark.slow
async def test_personal_alerts_in_the_real_process(tmp_path: Path) -> None:
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    base = {k: v for k, v in os.environ.items() if not k.startswith("GEXBOT_")}
    upstream = contextlib.ExitStack()
    url = upstream.enter_context(sim_server("--scenario", "scenario.yaml", env=base, cwd=tmp_path))
    started = asyncio.get_running_loop().time()
    telegram = FakeTelegram()
    await telegram.start()
    env = dict(base)
    env.update(
        GEXBOT_API_URL=url,
        GEXBOT_API_KEY="demo",
        GEXBOT_SYMBOLS="BTCUSDT",
        GEXBOT_POLL_INTERVAL="1",
        GEXBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'b.db'}",
        GEXBOT_RULES=str(tmp_path / "rules"),
        GEXBOT_TELEGRAM_BOT_TOKEN=telegram.token,
        GEXBOT_TELEGRAM_API_URL=telegram.api_url,
        GEXBOT_TELEGRAM_ALLOWED_USERS=f"{TRADER},{BLOCKER}",
        GEXBOT_TELEGRAM_POLL_TIMEOUT="1",
        GEXBOT_HTTP_PORT=str(port := _free_port()),
    )
    bot = await _start("run", env=env, cwd=tmp_path)
    try:
        telegram.push_command("/alert btc crosses hvl", user=TRADER)
        telegram.push_command("/alert btc crosses hvl", user=BLOCKER)
        await until(
            lambda: telegram.replies_to(TRADER) and telegram.replies_to(BLOCKER),
            timeout=15,
            what="both alerts made",
        )
        made_at = asyncio.get_running_loop().time() - started
        assert made_at < 10, f"alerts made {made_at:.1f}s in: too late for the 12 s cross"
        telegram.script[str(BLOCKER)].append("blocked")  # the blocker blocks the bot now
        await until(lambda: _alerts_of(telegram, TRADER), timeout=25, what="the up-cross alert")

        bot.send_signal(signal.SIGTERM)  # a restart between the two crosses
        _, err = await asyncio.wait_for(bot.communicate(), timeout=15)
        assert bot.returncode == 0, err.decode()[-2000:]
        bot = await _start("run", env=env, cwd=tmp_path)
        telegram.push_command("/alerts", user=TRADER)
        await until(lambda: len(telegram.replies_to(TRADER)) >= 3, timeout=15, what="/alerts")
        await until(
            lambda: len(_alerts_of(telegram, TRADER)) >= 2, timeout=25, what="the down-cross alert"
        )
        # The operator's counts: the paused alert of the blocker is not evaluated.
        async with httpx.AsyncClient() as http:
            health = (await http.get(f"http://127.0.0.1:{port}/healthz")).json()
            metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        assert health["personal_alerts"] == {"telegram": 1, "slack": 0, "discord": 0}
        assert 'gexbot_personal_alerts{platform="telegram"} 1.0' in metrics
        cli = await _start("alerts", env=env, cwd=tmp_path)
        out, _ = await asyncio.wait_for(cli.communicate(), timeout=30)
        assert cli.returncode == 0
        listed = out.decode()
        telegram.push_command("/unalert #1", user=TRADER)
        await until(lambda: len(telegram.replies_to(TRADER)) >= 5, timeout=15, what="/unalert")
        bot.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(bot.communicate(), timeout=15)
        assert bot.returncode == 0, err.decode()[-2000:]
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
        upstream.close()
        await telegram.stop()

    made, up, listing, down, deleted = telegram.replies_to(TRADER)
    assert made.startswith("Alert #1 set: BTCUSDT crosses its HVL (dead band 0.1%).")
    assert "crossed above HVL 80,500" in up
    assert "alert #1" in up
    assert "• #1 BTCUSDT crosses its HVL (dead band 0.1%) · last fired " in listing
    assert "crossed below HVL 80,500" in down
    assert deleted == "Deleted alert #1."
    # The blocker's alert: made, its first alert refused with 403, then paused, not retried.
    (blocker_made,) = telegram.replies_to(BLOCKER)
    assert blocker_made.startswith("Alert #2 set:")
    header, one, two = (line.split("\t") for line in listed.splitlines())
    assert header == ["id", "chat", "owner", "alert", "last fired", "state"]
    assert one[:4] == ["#1", "telegram:111", "111", "BTCUSDT crosses hvl band 0.1%"]
    assert one[4].endswith(" ago")
    assert one[5] == "active"
    assert two[:4] == ["#2", "telegram:222", "222", "BTCUSDT crosses hvl band 0.1%"]
    assert two[5] == "paused: telegram: forbidden for chat 222 (bot blocked or removed)"
