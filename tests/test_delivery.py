"""The dispatcher with the real notifiers against fake Slack and Telegram, end to end."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from gexbot.app import build_notifiers, real_runtime
from gexbot.cli.check import channel_problems
from gexbot.core.alerts.evaluate import index_rules
from gexbot.core.language.model import RuleSet
from gexbot.core.language.rulefile import build_ruleset, parse_rule_file
from gexbot.loops.cycle import Pipeline
from gexbot.loops.deliver import Dispatcher, DispatchPolicy, build_routes
from gexbot.settings import load_settings
from gexbot.store.tables import outbox
from tests.fakes import FakeSlack, FakeTelegram
from tests.rulekit import T0, bundle, snapshot

RULES = """
channels:
  desk: {slack: "#gex-alerts"}
  ops: {slack: "C0OPS12345"}
  me: {telegram: 42}
  tty: {terminal: true}
warnings:
  notify: [ops, tty]
rules:
  - id: hvl-regime
    when: {crosses: hvl}
    notify: [desk, me]
    severity: critical
  - id: near-cr
    when: {near: call_resistance, within_pct: 0.5}
    notify: [desk]
"""


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeSlack, FakeTelegram]]:
    slack, telegram = FakeSlack(), FakeTelegram()
    await slack.start()
    await telegram.start()
    yield slack, telegram
    await slack.stop()
    await telegram.stop()


def _ruleset(text: str = RULES) -> RuleSet:
    return build_ruleset([parse_rule_file(text, "rules.yaml")])


class Bot:
    """Pipeline + dispatcher wired like the app, with the fakes' URLs as base URLs."""

    def __init__(
        self,
        db: Engine,
        fakes: tuple[FakeSlack, FakeTelegram],
        rules: RuleSet,
        charts: Callable[[str], Awaitable[bytes | None]] | None = None,
    ) -> None:
        slack, telegram = fakes
        settings = load_settings(
            env_file=None,
            slack_bot_token=slack.token,
            slack_api_url=slack.api_url,
            telegram_bot_token=telegram.token,
            telegram_api_url=telegram.api_url,
        )
        self.notifiers = build_notifiers(settings, console=None, runtime=real_runtime())
        self.now = T0 + timedelta(seconds=30)  # the dispatcher runs right after the 2nd cycle
        self.pipeline = Pipeline(db, index_rules(rules.rules))
        self.dispatcher = Dispatcher(
            db,
            build_routes(rules, self.notifiers),
            clock=lambda: self.now,
            warnings_to=rules.warnings_notify,
            policy=DispatchPolicy(lease=60, max_attempts=3),
            charts=charts,
            rng=random.Random(0),
            monotonic=time.monotonic,
        )

    async def close(self) -> None:
        for n in self.notifiers.values():
            await n.close()


async def test_alerts_reach_each_destination_once_grouped_per_cycle(
    db: Engine, fakes: tuple[FakeSlack, FakeTelegram]
) -> None:
    slack, telegram = fakes
    bot = Bot(db, fakes, _ruleset())
    try:
        bot.pipeline.run(bundle(snapshot(99, hvl=100, call_resistance=103)), now=T0)
        crossing = bundle(snapshot(101, hvl=100, call_resistance=101.3))  # both rules fire
        bot.pipeline.run(crossing, now=T0 + timedelta(seconds=30))
        stats = await bot.dispatcher.run_once()
        assert len(stats.sent) == 3
        assert not stats.dead
        assert [p.channel for p in slack.posts] == ["#gex-alerts"]
        assert slack.posts[0].text.startswith("2 alerts: 🔴 BTCUSDT crossed above HVL 100")
        assert [m.chat_id for m in telegram.messages] == ["42"]
        assert "crossed above HVL 100" in telegram.messages[0].text
        again = await bot.dispatcher.run_once()
        assert again.sent == []
        assert len(slack.posts) == 1
    finally:
        await bot.close()


async def test_a_dead_channel_warns_on_the_warnings_route_once(
    db: Engine, fakes: tuple[FakeSlack, FakeTelegram]
) -> None:
    slack, _telegram = fakes
    slack.script["#gex-alerts"].append("channel_not_found")
    bot = Bot(db, fakes, _ruleset())
    try:
        bot.pipeline.run(bundle(snapshot(99, hvl=100)), now=T0)
        bot.pipeline.run(bundle(snapshot(101, hvl=100)), now=T0 + timedelta(seconds=30))
        stats = await bot.dispatcher.run_once()
        assert len(stats.dead) == 1
        assert len(stats.sent) == 1
        with db.connect() as conn:
            dead = conn.execute(select(outbox).where(outbox.c.state == "dead")).one()
        assert dead.last_error == "slack: channel_not_found"
        await bot.dispatcher.run_once()  # delivers the warning
        warning = [p for p in slack.posts if p.channel == "C0OPS12345"]
        assert len(warning) == 1
        assert "Delivery to channel `desk` (slack #gex-alerts) failed for good" in warning[0].text
    finally:
        await bot.close()


async def test_a_rate_limited_destination_does_not_hold_up_the_others(
    db: Engine, fakes: tuple[FakeSlack, FakeTelegram]
) -> None:
    slack, telegram = fakes
    slack.script["#gex-alerts"].append((429, 2))
    bot = Bot(db, fakes, _ruleset())
    try:
        bot.pipeline.run(bundle(snapshot(99, hvl=100)), now=T0)
        bot.pipeline.run(bundle(snapshot(101, hvl=100)), now=T0 + timedelta(seconds=30))
        stats = await bot.dispatcher.run_once()
        assert len(stats.retried) == 1  # put back for its 2 s, not waited for in the pass
        assert len(stats.sent) == 1
        assert len(telegram.messages) == 1
        with db.connect() as conn:
            row = conn.execute(select(outbox).where(outbox.c.state == "pending")).one()
        assert row.due_at == bot.now + timedelta(seconds=2)  # honours Retry-After
        bot.now += timedelta(seconds=2)
        t1 = asyncio.get_running_loop().time()
        assert len((await bot.dispatcher.run_once()).sent) == 1
        # The notifier also keeps the channel quiet for the rest of the 2 s.
        assert asyncio.get_running_loop().time() - t1 >= 1.0
        assert len(slack.posts) == 1
    finally:
        await bot.close()


async def test_a_channel_without_its_token_is_dead_with_the_variable_named(db: Engine) -> None:
    rules = _ruleset()
    settings = load_settings(env_file=None)
    notifiers = build_notifiers(settings, console=None, runtime=real_runtime())
    now = datetime(2026, 11, 24, tzinfo=UTC)
    pipeline = Pipeline(db, index_rules(rules.rules))
    pipeline.run(bundle(snapshot(99, hvl=100)), now=now)
    pipeline.run(bundle(snapshot(101, hvl=100)), now=now)
    dispatcher = Dispatcher(
        db,
        build_routes(rules, notifiers),
        clock=lambda: now,
        policy=DispatchPolicy(lease=60),
        rng=random.Random(0),
        monotonic=time.monotonic,
    )
    stats = await dispatcher.run_once()
    assert len(stats.dead) == 2
    with db.connect() as conn:
        errors = sorted(r.last_error for r in conn.execute(select(outbox)))
    assert errors[:2] == [
        "GEXBOT_SLACK_BOT_TOKEN is not set",
        "GEXBOT_TELEGRAM_BOT_TOKEN is not set",
    ]


def test_check_names_the_missing_token_of_each_used_platform() -> None:
    problems = channel_problems(load_settings(env_file=None), _ruleset())
    assert [p.split(":")[0] for p in problems] == [
        "GEXBOT_SLACK_BOT_TOKEN",
        "GEXBOT_TELEGRAM_BOT_TOKEN",
        "GEXBOT_SLACK_BOT_TOKEN",
    ]
    assert "channel `desk` (slack #gex-alerts)" in problems[0]


def test_the_example_rules_need_no_token(tmp_path: Path) -> None:
    from gexbot.loops.rules import load_rules

    rules = load_rules(Path(__file__).resolve().parents[1] / "rules", setting="GEXBOT_RULES")
    assert channel_problems(load_settings(env_file=None), rules) == []


async def test_rules_with_chart_true_attach_the_chart_after_the_text(
    db: Engine, fakes: tuple[FakeSlack, FakeTelegram], caplog: pytest.LogCaptureFixture
) -> None:
    slack, telegram = fakes
    rules = _ruleset(
        RULES.replace(
            "    severity: critical\n", "    severity: critical\n    chart: true\n"
        ).replace("#gex-alerts", "C0DESK1234")
    )
    assert next(r for r in rules.rules if r.id == "hvl-regime").chart
    calls: list[str] = []

    async def chart(symbol: str) -> bytes | None:
        calls.append(symbol)
        return b"\x89PNG fake chart"

    bot = Bot(db, fakes, rules, charts=chart)
    try:
        bot.pipeline.run(bundle(snapshot(99, hvl=100)), now=T0)
        bot.pipeline.run(bundle(snapshot(101, hvl=100)), now=T0 + timedelta(seconds=30))
        await bot.dispatcher.run_once()
    finally:
        await bot.close()
    assert calls == ["BTCUSDT", "BTCUSDT"]  # one per destination
    assert telegram.photos == [("42", b"\x89PNG fake chart")]
    assert slack.uploads == [("C0DESK1234", "BTCUSDT levels", b"\x89PNG fake chart")]
    assert len(slack.posts) == 1
    assert len(telegram.messages) == 1


async def test_a_chart_failure_never_loses_the_alert(
    db: Engine, fakes: tuple[FakeSlack, FakeTelegram], caplog: pytest.LogCaptureFixture
) -> None:
    slack, telegram = fakes
    rules = _ruleset(
        RULES.replace("    severity: critical\n", "    severity: critical\n    chart: true\n")
    )

    async def broken(symbol: str) -> bytes | None:
        raise RuntimeError("renderer exploded")

    bot = Bot(db, fakes, rules, charts=broken)
    try:
        bot.pipeline.run(bundle(snapshot(99, hvl=100)), now=T0)
        bot.pipeline.run(bundle(snapshot(101, hvl=100)), now=T0 + timedelta(seconds=30))
        stats = await bot.dispatcher.run_once()
    finally:
        await bot.close()
    assert len(stats.sent) == 2
    assert not stats.retried
    assert len(slack.posts) == 1
    assert len(telegram.messages) == 1
    assert not telegram.photos
    assert "the alert went without it" in caplog.text
