"""A database outage never ends the bot: on PostgreSQL, the database goes away for a few
seconds while Telegram commands arrive; the process keeps running and answers each command
once the database is back."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import make_url

from gexbot.app import compose, real_runtime
from gexbot.loops.rules import load_rules
from gexbot.settings import load_settings
from gexbot.sim.market import Simulator
from gexbot.sim.server import SimServer
from gexbot.store.engine import migrate
from tests.conftest import fresh_database
from tests.fakes import FakeTelegram, TcpProxy
from tests.waiting import until

RULES = """
channels: {tty: {terminal: true}}
warnings: {notify: [tty]}
rules:
  - id: above-1
    symbols: [BTCUSDT]
    when: {above: 1}
    notify: tty
"""
TRADER = 4242


@pytest.mark.slow
async def test_the_bot_outlives_a_database_outage_and_answers_after_it(
    tmp_path: Path, pg_unavailable: str | None
) -> None:
    with fresh_database("postgresql", tmp_path, pg_unavailable) as engine:
        migrate(engine)  # `gexbot db upgrade`
        url = make_url(engine.url.render_as_string(hide_password=False))
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
        await proxy.start()
        telegram = FakeTelegram()
        await telegram.start()
        sim = SimServer(Simulator(clock=time.time), api_key="k")
        await sim.start()
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "r.yaml").write_text(RULES)
        settings = load_settings(
            env_file=None,
            api_url=sim.url,
            api_key="k",
            rules=rules,
            symbols=["BTCUSDT"],
            poll_interval=1,
            leader_lease=2,
            database_url=url.set(host="127.0.0.1", port=proxy.port).render_as_string(
                hide_password=False
            ),
            telegram_bot_token=telegram.token,
            telegram_api_url=telegram.api_url,
            telegram_allowed_users=[TRADER],
            telegram_poll_timeout=1,
        )
        stop = asyncio.Event()
        try:
            async with compose(
                settings,
                load_rules(rules, setting="GEXBOT_RULES"),
                Console(file=io.StringIO()),
                runtime=real_runtime(),
            ) as bot:
                task = asyncio.create_task(bot.run(stop))
                telegram.push_command("/status", user=TRADER)
                await until(lambda: telegram.replies_to(TRADER), timeout=20, what="a first answer")
                proxy.sever()
                await until(
                    lambda: not bot.leadership.is_leader(),
                    timeout=10,
                    what="the leader to notice the database is gone",
                )
                telegram.push_command("/mute btc 1h", user=TRADER)
                telegram.push_command("/levels btc", user=TRADER)
                # The outage lasts a few seconds of real time: every loop meets its errors.
                await asyncio.sleep(3)
                assert not task.done(), "a loop ended the process during the outage"
                proxy.restore()
                await until(
                    lambda: len(telegram.replies_to(TRADER)) >= 3,
                    timeout=30,
                    what="the commands sent during the outage to be answered",
                )
                assert not task.done()
                stop.set()
                await asyncio.wait_for(task, timeout=20)
        finally:
            stop.set()
            await sim.stop()
            await telegram.stop()
            await proxy.stop()
    replies = telegram.replies_to(TRADER)
    assert len(replies) == 3, [r[:60] for r in replies]  # each answered once, none replayed
    assert "muted" in replies[1].lower()
    assert replies[2].startswith("<pre>BTCUSDT")
