"""`/levels` reply time over Telegram: 100 commands through the real command loop.

A fake Telegram Bot API (getUpdates long poll, sendMessage) on 127.0.0.1 and the simulator;
the loop answers from the latest snapshot (fresh). Prints p50 and p99 from the moment a
command is queued at the fake to the moment the fake receives the reply.

    .venv/bin/python bench/commands.py [--n 100]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telegram import Bot

from bench.profiling import profile_if_asked
from gexbot.adapters.backquant import BackQuantClient, build_http_client
from gexbot.charts.cache import ChartCache
from gexbot.chat.service import ChatService
from gexbot.chat.telegram import TelegramCommands
from gexbot.core.rulefile import build_ruleset, parse_rule_file
from gexbot.core.snapshot import BundleSnapshot
from gexbot.sim.market import Simulator
from gexbot.sim.server import SimServer
from gexbot.store.engine import make_engine, migrate
from tests.fakes import FakeTelegram

USER = 111


async def main(n: int) -> None:
    telegram = FakeTelegram()
    await telegram.start()
    sim = SimServer(Simulator(clock=time.time), api_key="k")
    await sim.start()
    rules = build_ruleset(
        [
            parse_rule_file(
                "channels: {tty: {console: true}}\n"
                "rules: [{id: r, when: {crosses: hvl}, notify: tty}]\n",
                "r.yaml",
            )
        ]
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'c.db'}")
        migrate(engine)
        async with build_http_client(sim.url, "k") as http:
            client = BackQuantClient(http, wall_clock=time.time, api_key="k")
            latest = await client.bundle(["BTCUSDT", "ETHUSDT", "SOLUSDT", "HYPEUSDT"])
            charts = ChartCache(client, engine, ttl=15, clock=lambda: datetime.now(tz=UTC))
            service = ChatService(
                engine=engine,
                client=client,
                rules=lambda: rules,
                latest=lambda: _fresh(latest),
                universe=list(latest.symbols),
                fresh_for=30,
                clock=lambda: datetime.now(tz=UTC),
                # As `gexbot run` wires it: one chart per symbol and refresh, after the text.
                charts=charts,
            )
            loop = TelegramCommands(
                Bot(telegram.token, base_url=telegram.api_url),
                service,
                engine=engine,
                allowed_users=[USER],
                poll_timeout=5,
            )
            await charts.warm_up()  # `gexbot run` does this at start, off the loop
            stop = asyncio.Event()
            task = asyncio.create_task(loop.run(stop))
            times = []
            for i in range(n):
                sent = len(telegram.messages)
                t0 = time.monotonic()
                telegram.push_command(f"/levels {['btc', 'eth', 'sol', 'hype'][i % 4]}", user=USER)
                while len(telegram.messages) == sent:  # noqa: ASYNC110 - the fake has no hook
                    await asyncio.sleep(0.001)
                times.append((telegram.messages[-1].at - t0) * 1000)
            stop.set()
            await task
        engine.dispose()
    await sim.stop()
    await telegram.stop()
    times.sort()
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
    print(
        f"/levels over Telegram, {n} commands, fresh snapshot: "
        f"p50 {times[len(times) // 2]:.1f} ms, p99 {p99:.1f} ms"
    )


def _fresh(bundle: BundleSnapshot) -> BundleSnapshot:
    return replace(bundle, received_at=datetime.now(tz=UTC))


if __name__ == "__main__":
    with profile_if_asked():
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--n", type=int, default=100)
        asyncio.run(main(parser.parse_args().n))
