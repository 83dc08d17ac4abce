"""`gexbot run` with Telegram commands: mute, unmute and subscribe in the real process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

from tests.fakes import FakeTelegram
from tests.test_e2e import _start

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


async def _until(check: object, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


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
    sim_started = asyncio.get_running_loop().time()
    telegram = FakeTelegram()
    await telegram.start()
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
    )
    bot = await _start("run", env=env, cwd=tmp_path)
    try:
        telegram.push_command("/mute hvl-regime 1h", user=TRADER)
        await _until(lambda: len(telegram.replies_to(TRADER)) >= 1, 10)
        # The up-cross happens at step 9 while muted; afterwards unmute and subscribe.
        await asyncio.sleep(max(0.0, sim_started + 12 - asyncio.get_running_loop().time()))
        telegram.push_command("/unmute hvl-regime", user=TRADER)
        telegram.push_command("/subscribe BTC", user=COLLEAGUE)
        await _until(lambda: len(telegram.replies_to(COLLEAGUE)) >= 1, 5)
        # The down-cross at step 18 reaches both chats.
        await _until(lambda: len(telegram.replies_to(COLLEAGUE)) >= 2, 15)
        await asyncio.sleep(1)
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
