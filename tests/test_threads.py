"""Follow-ups in the thread of the alert that opened their episode: the real notifiers (slack-sdk,
python-telegram-bot, the Discord REST client) against the fakes over HTTP, through the outbox, a
restart in between, the original deleted, and threading turned off."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
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
