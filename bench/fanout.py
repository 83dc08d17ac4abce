"""Fan-out under the platforms' limits: 1,000 Telegram DMs plus 200 Slack posts to 4 channels.

Rows go through the real outbox, dispatcher and notifiers (python-telegram-bot, slack-sdk) to
fake Telegram and Slack servers on 127.0.0.1 that enforce the published limits (Telegram 30/s
overall and 1/s per chat; Slack 1/s per channel) and answer 429 with retry_after past them.
Prints total time, the physical minimum for the load, their ratio and the 429s received.

    .venv/bin/python bench/fanout.py [--telegram N] [--slack N] [--channels N]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.profiling import profile_if_asked
from gexbot.app import build_notifiers, real_runtime
from gexbot.core.alerts.events import AlertEvent
from gexbot.core.alerts.states import NotifyReason
from gexbot.core.language.model import Channel, ChannelKind, RuleSet, Severity
from gexbot.loops.deliver import Dispatcher, DispatchPolicy, build_routes
from gexbot.settings import load_settings
from gexbot.store.engine import make_engine, migrate
from gexbot.store.outbox import counts, enqueue
from tests.fakes import FakeSlack, FakeTelegram


async def main(n_telegram: int, n_slack: int, n_channels: int) -> None:
    slack, telegram = FakeSlack(enforce_limits=True), FakeTelegram(enforce_limits=True)
    await slack.start()
    await telegram.start()
    channels = {
        f"tg{i}": Channel(f"tg{i}", ChannelKind.TELEGRAM, str(10_000 + i))
        for i in range(n_telegram)
    }
    channels |= {
        f"sl{i}": Channel(f"sl{i}", ChannelKind.SLACK, f"#desk-{i}") for i in range(n_channels)
    }
    rules = RuleSet(channels=channels, warnings_notify=(), rules=())
    now = datetime(2026, 11, 24, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'fanout.db'}")
        migrate(engine)
        items = []
        for i in range(n_telegram):
            items.append((_event(f"tg|{i}", now), [f"tg{i}"]))
        for i in range(n_slack):
            items.append((_event(f"sl|{i}", now), [f"sl{i % n_channels}"]))
        with engine.begin() as conn:
            enqueue(conn, items, now=now)
        settings = load_settings(
            env_file=None,
            slack_bot_token=slack.token,
            slack_api_url=slack.api_url,
            telegram_bot_token=telegram.token,
            telegram_api_url=telegram.api_url,
        )
        notifiers = build_notifiers(settings, console=None, runtime=real_runtime())
        dispatcher = Dispatcher(
            engine,
            build_routes(rules, notifiers),
            clock=lambda: datetime.now(tz=UTC),
            policy=DispatchPolicy(batch=5_000, lease=600, group=False),
            rng=random.Random(0),
            monotonic=time.monotonic,
        )
        t0 = time.perf_counter()
        passes = 0
        while True:
            passes += 1
            await dispatcher.run_once()
            with engine.connect() as conn:
                left = counts(conn)
            if not left["pending"] and not left["sending"]:  # type: ignore[index]
                break
            await asyncio.sleep(0.2)
        total = time.perf_counter() - t0
        for n in notifiers.values():
            await n.close()
        engine.dispose()
    await slack.stop()
    await telegram.stop()
    tg_min = max(0, n_telegram - 1) / 30
    per_channel = -(-n_slack // n_channels)
    slack_min = max(0, per_channel - 1) * 1.0
    minimum = max(tg_min, slack_min)
    print(
        f"load: {n_telegram} Telegram DMs to {n_telegram} chats + {n_slack} Slack posts to "
        f"{n_channels} channels"
    )
    print(
        f"delivered: telegram {len(telegram.messages)}, slack {len(slack.posts)} "
        f"in {passes} dispatch passes"
    )
    print(
        f"physical minimum: telegram {tg_min:.1f} s (30/s), slack {slack_min:.1f} s "
        f"(1/s/channel) -> {minimum:.1f} s"
    )
    print(f"total: {total:.1f} s, ratio to minimum: {total / minimum:.3f}x")
    print(f"429s received: telegram {telegram.rejected_429}, slack {slack.rejected_429}")


def _event(key: str, at: datetime) -> AlertEvent:
    return AlertEvent(
        key=key,
        seq=1,
        rule_id="fanout",
        symbol="BTCUSDT",
        reason=NotifyReason.FIRED,
        severity=Severity.INFO,
        at=at,
        kind="crosses",
        level_name="hvl",
        level=67000.0,
        spot=67100.0,
        distance_pct=-0.15,
        direction="up",
        cause="spot",
        computed_at=at,
    )


if __name__ == "__main__":
    with profile_if_asked():
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--telegram", type=int, default=1000)
        parser.add_argument("--slack", type=int, default=200)
        parser.add_argument("--channels", type=int, default=4)
        args = parser.parse_args()
        asyncio.run(main(args.telegram, args.slack, args.channels))
