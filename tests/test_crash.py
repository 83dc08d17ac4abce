"""Crash safety with the real process: SIGKILL at random instants, restart, nothing lost."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select

from gexbot.store.tables import outbox
from tests.fakes import FakeSlack, FakeTelegram
from tests.test_e2e import _start
from tests.waiting import until

KILLS = 14
CROSSING_TICKS = 100  # crossings stop after 50 s (refresh 0.5 s): then the outbox can drain

RULES = """
channels:
  desk: {slack: "#gex-alerts"}
  me: {telegram: 4242}
rules:
  - id: hvl-cross
    symbols: [BTCUSDT]
    when: {crosses: hvl}
    notify: [desk, me]
    cooldown: 0s
"""


def crossing_scenario(steps: int, refresh: float = 0.5) -> str:
    """BTC crosses its HVL every second refresh, for `steps` refreshes."""
    lines = [
        "walk: false",
        f"refresh: {refresh}",
        "steps:",
        "  - {at: 0, spot: {BTCUSDT: 80000}, levels: {BTCUSDT: {hvl: 80500}}}",
    ]
    for i in range(2, steps, 2):  # spot crosses the HVL every second refresh
        lines.append(f"  - {{at: {i}, spot: {{BTCUSDT: {81000 if i % 4 == 2 else 80000}}}}}")
    return "\n".join(lines) + "\n"


async def _drained(engine: Engine, quiet_at: float) -> None:
    """Alerts come every second and Slack takes one post per second per channel: wait for
    the scenario to end and the backlog to drain before the clean stop."""

    def states() -> set[str]:
        with engine.connect() as conn:
            return {r.state for r in conn.execute(select(outbox.c.state))}

    await until(
        lambda: time.monotonic() > quiet_at and states() == {"sent"},
        timeout=quiet_at + 40 - time.monotonic(),
        what="the scenario to end and the outbox to drain",
        interval=0.5,
    )


@pytest.mark.slow
async def test_sigkill_at_random_instants_loses_nothing(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(crossing_scenario(CROSSING_TICKS))
    quiet_at = time.monotonic() + CROSSING_TICKS * 0.5 + 1
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("GEXBOT_")}
    sim = await _start(
        "sim-server", "--port", "0", "--scenario", str(scenario), env=base_env, cwd=tmp_path
    )
    assert sim.stdout is not None
    url = (await sim.stdout.readline()).decode().split(" on ")[1].split("/v2")[0]
    slack, telegram = FakeSlack(), FakeTelegram()
    await slack.start()
    await telegram.start()
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    db = tmp_path / "bot.db"
    env = dict(base_env)
    env.update(
        GEXBOT_API_URL=url,
        GEXBOT_API_KEY="demo",
        GEXBOT_SYMBOLS="BTCUSDT",
        GEXBOT_POLL_INTERVAL="0.5",
        GEXBOT_DATABASE_URL=f"sqlite:///{db}",
        GEXBOT_RULES=str(tmp_path / "rules"),
        GEXBOT_SLACK_BOT_TOKEN=slack.token,
        GEXBOT_SLACK_API_URL=slack.api_url,
        GEXBOT_TELEGRAM_BOT_TOKEN=telegram.token,
        GEXBOT_TELEGRAM_API_URL=telegram.api_url,
    )
    rng = random.Random(20261124)
    try:
        for _ in range(KILLS):
            bot = await _start("run", env=env, cwd=tmp_path)
            await asyncio.sleep(rng.uniform(1.5, 4.0))  # start-up takes ~1 s; then cycles
            bot.send_signal(signal.SIGKILL)
            await bot.wait()
        # A last, clean run delivers whatever the kills left behind (leases of 300 s are
        # reclaimed only after they expire, so give rows left `sending` back first).
        engine = create_engine(f"sqlite:///{db}")
        with engine.begin() as conn:
            conn.execute(
                outbox.update()
                .where(outbox.c.state == "sending")
                .values(lease_until=outbox.c.created_at)
            )
        bot = await _start("run", env=env, cwd=tmp_path)
        await _drained(engine, quiet_at)
        bot.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bot.wait(), timeout=10)
        assert bot.returncode == 0
        engine = create_engine(f"sqlite:///{db}")
        with engine.connect() as conn:
            rows = list(conn.execute(select(outbox)))
        engine.dispose()
    finally:
        sim.send_signal(signal.SIGTERM)
        await sim.wait()
        await slack.stop()
        await telegram.stop()
    assert len(rows) >= 10, "too few alerts to prove anything"
    states = {r.state for r in rows}
    assert states == {"sent"}, states  # every enqueued alert reached its destination
    by_channel = {
        "desk": {p.ts for p in slack.posts},
        "me": {str(m.message_id) for m in telegram.messages},
    }
    duplicates = 0
    for channel, received in by_channel.items():
        marked = {r.provider_message_id for r in rows if r.channel == channel}
        assert marked <= received  # what the store calls sent, the platform has
        duplicates += len(received - marked)  # sent, then killed before the mark
    print(f"\n{len(rows)} deliveries across {KILLS} kills; duplicates: {duplicates}")
    # A duplicate needs a kill between a send and its mark: at most one batch per kill.
    assert duplicates <= 2 * KILLS
