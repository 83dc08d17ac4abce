"""Follow-ups in the thread of the alert that opened their episode: the real notifiers (slack-sdk,
python-telegram-bot, the Discord REST client) against the fakes over HTTP, through the outbox, a
restart in between, the original deleted, and threading turned off."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from gexbot.app import build_notifiers, real_runtime
from gexbot.core.alerts.evaluate import index_rules
from gexbot.core.language.model import RuleSet
from gexbot.core.language.rulefile import build_ruleset, parse_rule_file
from gexbot.loops.cycle import Pipeline
from gexbot.loops.deliver import Dispatcher, DispatchPolicy, build_routes
from gexbot.settings import load_settings
from gexbot.store.tables import outbox
from tests.fakes import FakeDiscord, FakeSlack, FakeTelegram
from tests.rulekit import T0, bundle, snapshot
from tests.test_e2e import _start
from tests.waiting import until

RULES = """
channels:
  desk: {slack: "#gex-alerts"}
  me: {telegram: 42}
  room: {discord: "222222222222222222"}
rules:
  - id: above-cr
    when: {above: call_resistance}
    notify: [desk, me, room]
    repeat: 5m
    resolve: true
"""
ABOVE = bundle(snapshot(105, call_resistance=103))
BELOW = bundle(snapshot(101, call_resistance=103))


@dataclass
class Fakes:
    slack: FakeSlack
    telegram: FakeTelegram
    discord: FakeDiscord


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    f = Fakes(FakeSlack(), FakeTelegram(), FakeDiscord())
    for server in (f.slack, f.telegram, f.discord):
        await server.start()
    yield f
    for server in (f.slack, f.telegram, f.discord):
        await server.stop()


class Desk:
    """The pipeline and a dispatcher wired like the app; a new Desk on the same database is a
    restart (nothing kept in memory)."""

    def __init__(self, db: Engine, fakes: Fakes, *, threads: bool = True) -> None:
        settings = load_settings(
            env_file=None,
            slack_bot_token=fakes.slack.token,
            slack_api_url=fakes.slack.api_url,
            telegram_bot_token=fakes.telegram.token,
            telegram_api_url=fakes.telegram.api_url,
            discord_bot_token=fakes.discord.token,
            discord_api_url=fakes.discord.api_url,
        )
        rules: RuleSet = build_ruleset([parse_rule_file(RULES, "rules.yaml")])
        self.notifiers = build_notifiers(settings, console=None, runtime=real_runtime())
        self.now = T0
        self.pipeline = Pipeline(db, index_rules(rules.rules))
        self.dispatcher = Dispatcher(
            db,
            build_routes(rules, self.notifiers),
            clock=lambda: self.now,
            policy=DispatchPolicy(
                lease=60,
                max_attempts=3,
                threads=frozenset({"slack", "telegram", "discord"}) if threads else frozenset(),
            ),
            rng=random.Random(0),
            monotonic=time.monotonic,
        )

    async def cycle(self, market: Any, after: float) -> None:
        self.now += timedelta(seconds=after)
        self.pipeline.run(market, now=self.now)
        stats = await self.dispatcher.run_once()
        assert not stats.dead
        assert not stats.retried

    async def close(self) -> None:
        for n in self.notifiers.values():
            await n.close()


def _discord_refs(fakes: Fakes) -> list[str | None]:
    return [
        (p.payload.get("message_reference") or {}).get("message_id")
        for p in fakes.discord.posts
        if p.path.startswith("/channels/")
    ]


async def test_reminders_and_the_resolution_go_in_the_first_messages_thread_across_a_restart(
    db: Engine, fakes: Fakes
) -> None:
    desk = Desk(db, fakes)
    try:
        await desk.cycle(BELOW, 0)  # first sight
        await desk.cycle(ABOVE, 30)  # fires
        await desk.cycle(ABOVE, 301)  # a reminder
    finally:
        await desk.close()
    again = Desk(db, fakes)  # a restart: the thread is found in the database
    again.now = desk.now
    try:
        await again.cycle(BELOW, 30)  # resolved
    finally:
        await again.close()
    first_ts = fakes.slack.posts[0].ts
    assert [p.thread_ts for p in fakes.slack.posts] == [None, first_ts, first_ts]
    assert [p.reply_broadcast for p in fakes.slack.posts] == [None, False, False]
    assert fakes.slack.posts[1].text.startswith("🟠 Still: BTCUSDT above call resistance")
    assert fakes.slack.posts[2].text.startswith("✅ Resolved:")
    first_id = fakes.telegram.messages[0].message_id
    assert [m.reply_to for m in fakes.telegram.messages] == [None, first_id, first_id]
    # A reply to a message someone deleted is sent as a message of its own, not refused.
    assert fakes.telegram.messages[1].without_reply is True
    with db.connect() as conn:
        given = conn.execute(
            select(outbox.c.provider_message_id)
            .where(outbox.c.channel == "room")
            .order_by(outbox.c.seq)
        ).scalars()
        discord_first = next(iter(given))
    assert discord_first is not None
    assert _discord_refs(fakes) == [None, discord_first, discord_first]  # the id Discord gave


async def test_a_new_episode_opens_a_new_thread(db: Engine, fakes: Fakes) -> None:
    desk = Desk(db, fakes)
    try:
        for market, after in ((BELOW, 0), (ABOVE, 30), (BELOW, 30), (ABOVE, 30), (ABOVE, 301)):
            await desk.cycle(market, after)
    finally:
        await desk.close()
    posts = fakes.slack.posts
    # fired, resolved (in thread 1), fired again (new), reminder (in thread 2)
    assert [p.thread_ts for p in posts] == [None, posts[0].ts, None, posts[2].ts]


async def test_a_deleted_slack_original_still_gets_its_follow_up(db: Engine, fakes: Fakes) -> None:
    desk = Desk(db, fakes)
    try:
        await desk.cycle(BELOW, 0)
        await desk.cycle(ABOVE, 30)
        fakes.slack.script["#gex-alerts"].append("thread_not_found")
        await desk.cycle(ABOVE, 301)
    finally:
        await desk.close()
    posts = fakes.slack.posts
    assert len(posts) == 2  # the refused reply was posted on its own, once
    assert posts[1].thread_ts is None
    assert posts[1].text.startswith("🟠 Still:")


async def test_threads_can_be_turned_off_per_platform(db: Engine, fakes: Fakes) -> None:
    desk = Desk(db, fakes, threads=False)
    try:
        await desk.cycle(BELOW, 0)
        await desk.cycle(ABOVE, 30)
        await desk.cycle(BELOW, 30)
    finally:
        await desk.close()
    assert [p.thread_ts for p in fakes.slack.posts] == [None, None]
    assert [m.reply_to for m in fakes.telegram.messages] == [None, None]
    assert _discord_refs(fakes) == [None, None]


def test_the_settings_turn_threads_off_by_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEXBOT_TELEGRAM_THREADS", "false")
    settings = load_settings(env_file=None)
    assert (settings.slack_threads, settings.telegram_threads, settings.discord_threads) == (
        True,
        False,
        True,
    )
    monkeypatch.setenv("GEXBOT_SLACK_THREADS", "sometimes")
    with pytest.raises(Exception, match="GEXBOT_SLACK_THREADS"):
        load_settings(env_file=None)


def _marked(path: Path) -> bool:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return bool(conn.execute("SELECT count(*) FROM outbox WHERE state = 'sent'").fetchone()[0])


@pytest.mark.slow
async def test_a_thread_carries_on_after_a_sigkill_of_the_bot(tmp_path: Path) -> None:
    """The real process: the alert fires and is posted, the bot is killed, a new one starts,
    and the reminder lands in the first message's thread (its id came from the database)."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        "walk: false\nrefresh: 0.5\nsteps:\n"
        "  - {at: 0, spot: {BTCUSDT: 78000}, levels: {BTCUSDT: {call_resistance: 79000}}}\n"
        "  - {at: 16, spot: {BTCUSDT: 80000}}\n"  # after the bot's first cycles
    )
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "channels: {desk: {slack: '#gex-alerts'}}\n"
        "rules:\n"
        "  - {id: above-cr, symbols: [BTCUSDT], when: {above: call_resistance}, notify: desk,"
        " repeat: 4s}\n"
    )
    slack = FakeSlack()
    await slack.start()
    base = {k: v for k, v in os.environ.items() if not k.startswith("GEXBOT_")}
    sim = await _start(
        "sim-server", "--port", "0", "--scenario", str(scenario), env=base, cwd=tmp_path
    )
    assert sim.stdout is not None
    url = (await sim.stdout.readline()).decode().split(" on ")[1].split("/v2")[0]
    env = {
        **base,
        "GEXBOT_API_URL": url,
        "GEXBOT_API_KEY": "demo",
        "GEXBOT_SOURCE": "backquant",
        "GEXBOT_SYMBOLS": "BTCUSDT",
        "GEXBOT_POLL_INTERVAL": "0.5",
        "GEXBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "GEXBOT_RULES": str(rules),
        "GEXBOT_SLACK_BOT_TOKEN": slack.token,
        "GEXBOT_SLACK_API_URL": slack.api_url,
    }
    try:
        bot = await _start("run", env=env, cwd=tmp_path)
        try:
            await until(lambda: slack.posts, timeout=30, what="the first alert")
        except BaseException:
            bot.send_signal(signal.SIGKILL)
            _, err = await bot.communicate()
            print(err.decode()[-3000:])
            raise
        # Killed once the send is marked (the window before the mark is the crash test's).
        await until(lambda: _marked(tmp_path / "bot.db"), timeout=10, what="the mark")
        bot.send_signal(signal.SIGKILL)
        await bot.wait()
        first = slack.posts[0]
        bot = await _start("run", env=env, cwd=tmp_path)
        await until(lambda: len(slack.posts) >= 2, timeout=30, what="the reminder")
        bot.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bot.wait(), timeout=15)
    finally:
        sim.send_signal(signal.SIGTERM)
        await sim.wait()
        await slack.stop()
    assert first.thread_ts is None
    assert first.text.startswith("🟠 BTCUSDT above call resistance")
    reminder = slack.posts[1]
    assert reminder.text.startswith("🟠 Still:")
    assert reminder.thread_ts == first.ts
