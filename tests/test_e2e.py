"""`gexbot run` as a real process against the simulator and fake Slack and Telegram."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes import FakeSlack, FakeTelegram
from tests.waiting import until

SCENARIO = """
walk: false
refresh: 1
steps:
  - at: 0
    spot: {BTCUSDT: 80000}
    levels: {BTCUSDT: {hvl: 80500}}
  - at: 4
    missing: [SOLUSDT]
  - at: 6
    spot: {BTCUSDT: 81000}          # BTC crosses HVL up
  - at: 9
    error: {status: 429, retry_after: 1}
  - at: 11
    error: {status: 503, count: 2}
  - at: 13
    spot: {BTCUSDT: 80000}          # and back down
  - at: 15
    served: [SOLUSDT]               # SOL returns after ~11 s missing
"""

RULES = """
channels:
  desk: {slack: "#gex-alerts"}
  me: {telegram: 4242}
warnings:
  notify: [desk]
rules:
  - id: hvl-cross
    symbols: [BTCUSDT]
    when: {crosses: hvl}
    notify: [desk, me]
    cooldown: 0s
    severity: critical
"""


async def _start(*args: str, env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gexbot",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )


@pytest.fixture
async def sim_url(tmp_path: Path) -> AsyncIterator[str]:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEXBOT_")}
    proc = await _start(
        "sim-server", "--port", "0", "--scenario", str(scenario), env=env, cwd=tmp_path
    )
    assert proc.stdout is not None
    line = (await proc.stdout.readline()).decode()
    match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
    assert match, line
    yield match.group(1)
    proc.send_signal(signal.SIGTERM)
    await proc.wait()


@pytest.mark.slow
async def test_run_delivers_exactly_the_expected_messages_and_stops_on_sigterm(
    tmp_path: Path, sim_url: str
) -> None:
    slack, telegram = FakeSlack(), FakeTelegram()
    await slack.start()
    await telegram.start()
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "desk.yaml").write_text(RULES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEXBOT_")}
    env.update(
        GEXBOT_API_URL=sim_url,
        GEXBOT_API_KEY="demo",
        GEXBOT_SYMBOLS="BTCUSDT,SOLUSDT,DOGEUSDT",
        GEXBOT_POLL_INTERVAL="1",
        GEXBOT_MISSING_AFTER="3",
        GEXBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
        GEXBOT_RULES=str(tmp_path / "rules"),
        GEXBOT_SLACK_BOT_TOKEN=slack.token,
        GEXBOT_SLACK_API_URL=slack.api_url,
        GEXBOT_TELEGRAM_BOT_TOKEN=telegram.token,
        GEXBOT_TELEGRAM_API_URL=telegram.api_url,
    )
    bot = await _start("run", env=env, cwd=tmp_path)
    try:
        # The scenario ends at t = 15 s with SOL served again: the last message expected.
        await until(
            lambda: (
                bot.returncode is not None
                or (
                    any("SOLUSDT is served again" in p.text for p in slack.posts)
                    and len(telegram.messages) >= 2
                )
            ),
            timeout=90,
            what="the scenario's last alert",
        )
        assert bot.returncode is None, "the bot died"
        t0 = asyncio.get_running_loop().time()
        bot.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(bot.communicate(), timeout=10)
        assert bot.returncode == 0, err.decode()[-3000:]
        assert asyncio.get_running_loop().time() - t0 < 5
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
        await slack.stop()
        await telegram.stop()
    texts = [p.text for p in slack.posts]
    expected_slack = [
        "DOGEUSDT is not a symbol BackQuant serves",
        "BTCUSDT crossed above HVL 80,500",
        "SOLUSDT has had no data upstream for 3s (missing)",
        "BTCUSDT crossed below HVL 80,500",
        "SOLUSDT is served again after",
    ]
    for needle in expected_slack:
        assert sum(needle in t for t in texts) == 1, (needle, texts)
    assert len(texts) == len(expected_slack), texts
    tg = [m.text for m in telegram.messages]
    assert len(tg) == 2, tg
    assert "crossed above HVL 80,500" in tg[0]
    assert "crossed below HVL 80,500" in tg[1]
    log = err.decode()
    assert "Traceback" not in log
