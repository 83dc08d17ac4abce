"""Discord delivery: discord.py's HTTP client against a local fake of Discord's REST API."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from gexbot.adapters.discord import DiscordNotifier, DiscordRest, use_api
from gexbot.adapters.notify import DeliveryError
from gexbot.app import build_notifiers, real_runtime
from gexbot.cli.check import channel_problems, discord_command_problems
from gexbot.core.alerts.evaluate import index_rules
from gexbot.core.alerts.states import NotifyReason
from gexbot.core.language.model import Channel, ChannelKind, RuleSet, Severity
from gexbot.core.language.rulefile import build_ruleset, parse_rule_file, rule_file_json_schema
from gexbot.core.present.render import Rendered, discord_message, render
from gexbot.loops.cycle import Pipeline
from gexbot.loops.deliver import Dispatcher, DispatchPolicy, build_routes
from gexbot.settings import SettingsError, load_settings
from gexbot.store.tables import outbox
from tests.fakes import FakeDiscord
from tests.rulekit import T0, alert_event, bundle, snapshot
from tests.waiting import until

CHANNEL = "123456789012345678"
OTHER = "876543210987654321"


def _item(rule_id: str = "hvl-cross", **kw: object) -> Rendered:
    return render(
        alert_event(
            key=f"{rule_id}|BTCUSDT",
            seq=1,
            rule_id=rule_id,
            level=100.0,
            spot=101.0,
            distance_pct=-0.99,
            hvl=None,
            **kw,
        )
    )


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    await fake.start()
    use_api(fake.api_url)
    yield fake
    await fake.stop()


@pytest.fixture
async def notifier(discord: FakeDiscord) -> AsyncIterator[DiscordNotifier]:
    out = DiscordNotifier(DiscordRest(discord.token, timeout=5))
    yield out
    await out.close()


# -- the message, pure --------------------------------------------------------------------------


def _embeds(body: dict[str, object]) -> list[dict[str, Any]]:
    embeds = body["embeds"]
    assert isinstance(embeds, list)
    return embeds


def test_an_alert_is_an_embed_with_its_colour_data_time_and_a_plain_fallback() -> None:
    body = discord_message([_item()])
    assert body["allowed_mentions"] == {"parse": []}
    assert body["content"] == "🔴 BTCUSDT crossed above HVL 100"
    (embed,) = _embeds(body)
    assert embed["title"] == "🔴 BTCUSDT crossed above HVL 100"
    assert embed["color"] == 0xE5484D
    assert embed["footer"] == {"text": "data 12:00:00 UTC · rule hvl-cross"}
    assert embed["timestamp"].startswith("2026-11-24T12:00:00")


def test_severity_and_resolution_choose_the_colour() -> None:
    (info,) = _embeds(discord_message([_item(severity=Severity.INFO)]))
    (resolved,) = _embeds(discord_message([_item(reason=NotifyReason.RESOLVED)]))
    assert info["color"] == 0x3B82F6
    assert resolved["color"] == 0x22C55E


def test_user_text_cannot_ping_or_format() -> None:
    body = discord_message([_item(message="@everyone *BUY* {symbol}")])
    assert body["allowed_mentions"] == {"parse": []}  # what stops the ping
    assert "\\*BUY\\*" in str(body["content"])


def test_many_alerts_stay_within_ten_embeds_and_say_how_many_more() -> None:
    body = discord_message([_item(f"r{i}") for i in range(25)])
    embeds = _embeds(body)
    assert len(embeds) == 10
    assert embeds[-1]["title"] == "… and 16 more"
    assert str(body["content"]).startswith("25 alerts: ")
    assert len(str(body["content"])) <= 2000


def test_a_huge_template_is_cut_to_discords_limits() -> None:
    body = discord_message([_item(message="x" * 9000)])
    embed = _embeds(body)[0]
    assert len(embed["title"]) == 256
    assert len(str(body["content"])) == 2000


# -- over HTTP ---------------------------------------------------------------------------------


async def test_send_posts_the_embed_and_returns_the_message_id(
    discord: FakeDiscord, notifier: DiscordNotifier
) -> None:
    message_id = await notifier.send(CHANNEL, [_item()])
    (post,) = discord.to(CHANNEL)
    assert post.path == f"/channels/{CHANNEL}/messages"
    assert post.payload["allowed_mentions"] == {"parse": []}
    assert post.payload["embeds"][0]["title"] == "🔴 BTCUSDT crossed above HVL 100"
    assert message_id is not None
    assert message_id.isdigit()
    assert discord.logins == 1
    await notifier.send(CHANNEL, [_item()])
    assert discord.logins == 1  # logged in once


async def test_a_chart_is_attached_as_a_file(
    discord: FakeDiscord, notifier: DiscordNotifier
) -> None:
    png = b"\x89PNG\r\n\x1a\n-chart-"
    await notifier.send_image(CHANNEL, png, "BTCUSDT levels")
    (post,) = discord.to(CHANNEL)
    assert post.files == {"files[0]": png}
    assert post.payload["attachments"] == [{"id": 0, "filename": "levels.png"}]
    assert post.payload["embeds"][0]["image"] == {"url": "attachment://levels.png"}
    assert post.payload["allowed_mentions"] == {"parse": []}


async def test_a_429_waits_retry_after_then_delivers(
    discord: FakeDiscord, notifier: DiscordNotifier
) -> None:
    discord.script[CHANNEL].append((429, {"retry_after": 0.6}, {}))
    await notifier.send(CHANNEL, [_item()])
    first, second = discord.posts
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.6 - 0.05


async def test_a_rate_limited_channel_does_not_hold_up_another(
    discord: FakeDiscord, notifier: DiscordNotifier
) -> None:
    discord.script[CHANNEL].append((429, {"retry_after": 2.0}, {}))
    slow = asyncio.create_task(notifier.send(CHANNEL, [_item()]))
    await until(lambda: discord.posts, timeout=10, what="the limited request's 429")
    await notifier.send(OTHER, [_item()])
    assert not slow.done()  # the other channel was served while this one waits out its 2 s
    await slow
    assert len(discord.to(CHANNEL)) == 1


async def test_a_long_rate_limit_becomes_an_outbox_retry(
    discord: FakeDiscord, notifier: DiscordNotifier
) -> None:
    discord.script[CHANNEL].append((429, {"retry_after": 120.0}, {}))
    with pytest.raises(DeliveryError) as err:
        await notifier.send(CHANNEL, [_item()])
    assert err.value.retry_after == 120.0
    assert not err.value.permanent


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (403, 50001, "Missing Access"),
        (403, 50013, "Missing Permissions"),
        (404, 10003, "Unknown Channel"),
    ],
)
async def test_a_channel_that_refuses_the_bot_is_unreachable(
    discord: FakeDiscord, notifier: DiscordNotifier, status: int, code: int, message: str
) -> None:
    discord.script[CHANNEL].append((status, {"message": message, "code": code}, {}))
    with pytest.raises(DeliveryError) as err:
        await notifier.send(CHANNEL, [_item()])
    assert err.value.permanent
    assert err.value.unreachable
    assert f"HTTP {status}, code {code} ({message})" in str(err.value)
    assert len(discord.posts) == 1  # never retried


async def test_an_invalid_body_is_permanent_but_not_unreachable(
    discord: FakeDiscord, notifier: DiscordNotifier
) -> None:
    discord.script[CHANNEL].append((400, {"message": "Invalid Form Body", "code": 50035}, {}))
    with pytest.raises(DeliveryError) as err:
        await notifier.send(CHANNEL, [_item()])
    assert err.value.permanent
    assert not err.value.unreachable


async def test_a_refused_token_fails_once_and_then_sends_nothing(discord: FakeDiscord) -> None:
    notifier = DiscordNotifier(DiscordRest("wrong-token", timeout=5))
    try:
        for _ in range(3):
            with pytest.raises(DeliveryError) as err:
                await notifier.send(CHANNEL, [_item()])
            assert err.value.permanent
            assert "wrong-token" not in str(err.value)
            assert "HTTP 401" in str(err.value)
    finally:
        await notifier.close()
    assert discord.requests == 1  # one login refused; no request after it


async def test_a_server_error_is_retried_by_the_client(
    discord: FakeDiscord, notifier: DiscordNotifier
) -> None:
    discord.script[CHANNEL].append(502)
    await notifier.send(CHANNEL, [_item()])
    assert [p.status for p in discord.posts] == [502, 200]


async def test_a_timeout_is_temporary(discord: FakeDiscord) -> None:
    notifier = DiscordNotifier(DiscordRest(discord.token, timeout=0.5))
    discord.script[CHANNEL].extend([500] * 5)  # the client sleeps 1 s before its retry
    try:
        with pytest.raises(DeliveryError) as err:
            await notifier.send(CHANNEL, [_item()])
    finally:
        await notifier.close()
    assert "timed out" in str(err.value)
    assert not err.value.permanent


# -- rules, check and the outbox ---------------------------------------------------------------

DESK, OPS, GONE = "123456789012345678", "234567890123456789", "345678901234567890"
RULES = f"""
channels:
  desk: {{discord: "{DESK}"}}
  ops: {{discord: {OPS}}}
  gone: {{discord: "{GONE}"}}
warnings:
  notify: [ops]
rules:
  - id: hvl-regime
    when: {{crosses: hvl}}
    notify: [desk, gone]
    severity: critical
    chart: true
"""


def _rules() -> RuleSet:
    return build_ruleset([parse_rule_file(RULES, "rules.yaml")])


def test_a_discord_channel_is_read_from_the_rules_quoted_or_not() -> None:
    channels = _rules().channels
    assert channels["desk"] == Channel("desk", ChannelKind.DISCORD, DESK)
    assert channels["ops"].target == OPS  # unquoted YAML integer, kept exact
    props = rule_file_json_schema()["$defs"]["ChannelSpec"]["properties"]
    assert "discord" in props


def test_check_names_the_missing_discord_token() -> None:
    problems = channel_problems(load_settings(env_file=None), _rules())
    assert problems[0] == (
        f"GEXBOT_DISCORD_BOT_TOKEN: required by channel `desk` (discord {DESK}); set it or "
        "remove the channel from the rules"
    )
    assert len(problems) == 3


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("discord_allowed_users", "42"),
        ("discord_application_id", "app"),
        ("discord_public_key", "not-hex"),
        ("discord_api_url", "discord.com"),
    ],
)
def test_bad_discord_settings_name_their_variable(var: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(env_file=None, **{var: value})
    assert f"GEXBOT_{var.upper()}" in str(err.value)
    assert "Value error" not in str(err.value)  # pydantic's prefix is not for users


async def test_alerts_and_charts_reach_discord_and_a_refusing_channel_dies_once(
    db: Engine, discord: FakeDiscord
) -> None:
    rules = _rules()
    settings = load_settings(
        env_file=None, discord_bot_token=discord.token, discord_api_url=discord.api_url
    )
    notifiers = build_notifiers(settings, console=None, runtime=real_runtime())
    png = b"\x89PNG-levels"

    async def chart(_symbol: str) -> bytes:
        return png

    now = T0 + timedelta(seconds=30)
    dispatcher = Dispatcher(
        db,
        build_routes(rules, notifiers),
        clock=lambda: now,
        warnings_to=rules.warnings_notify,
        charts=chart,
        policy=DispatchPolicy(lease=60),
        rng=random.Random(0),
        monotonic=time.monotonic,
    )
    discord.script[GONE].append((403, {"message": "Missing Access", "code": 50001}, {}))
    try:
        pipeline = Pipeline(db, index_rules(rules.rules))
        pipeline.run(bundle(snapshot(99, hvl=100)), now=T0)
        pipeline.run(bundle(snapshot(101, hvl=100)), now=now)
        stats = await dispatcher.run_once()
        await dispatcher.run_once()  # the dead-letter report, queued by the first run
        again = await dispatcher.run_once()
    finally:
        for n in notifiers.values():
            await n.close()
    assert len(stats.sent) == 1
    assert len(stats.dead) == 1
    assert again.sent == []
    text, picture = discord.to(DESK)
    assert text.payload["embeds"][0]["title"] == "🔴 BTCUSDT crossed above HVL 100"
    assert picture.files == {"files[0]": png}
    assert len([p for p in discord.posts if GONE in p.path]) == 1  # never retried
    (report,) = discord.to(OPS)
    assert "Missing Access" in report.payload["content"]
    with db.connect() as conn:
        states = {(r.channel, r.state) for r in conn.execute(select(outbox))}
    assert ("gone", "dead") in states
    assert ("desk", "sent") in states


def test_check_names_what_discord_commands_lack() -> None:
    key = "ab" * 32
    lacking = discord_command_problems(
        load_settings(env_file=None, discord_public_key=key, discord_gateway=True)
    )
    assert lacking == [
        "GEXBOT_DISCORD_PUBLIC_KEY: Discord commands also need GEXBOT_DISCORD_BOT_TOKEN",
        "GEXBOT_DISCORD_GATEWAY: Discord commands also need GEXBOT_DISCORD_BOT_TOKEN",
        "GEXBOT_DISCORD_PUBLIC_KEY: the Discord Interactions endpoint needs GEXBOT_HTTP_PORT "
        "(it is 0, off)",
    ]
    complete = load_settings(
        env_file=None, discord_public_key=key, discord_bot_token="t", http_port=8080
    )
    assert discord_command_problems(complete) == []


async def test_a_global_429_holds_every_channel_for_its_wait(
    discord: FakeDiscord, notifier: DiscordNotifier
) -> None:
    await notifier.send(OTHER, [_item()])  # logged in, buckets known
    discord.script[CHANNEL].append((429, {"retry_after": 1.0, "global": True}, {}))
    limited = asyncio.create_task(notifier.send(CHANNEL, [_item()]))
    await until(lambda: len(discord.posts) >= 2, timeout=10, what="the global 429")
    told = discord.posts[-1].at
    await notifier.send(OTHER, [_item()])  # another channel waits for the global limit too
    assert discord.posts[-1].at - told >= 1.0 - 0.05
    await limited
    assert [p.status for p in discord.posts].count(429) == 1
    assert len(discord.to(CHANNEL)) == 1


async def test_a_shared_429_waits_and_delivers(
    discord: FakeDiscord, notifier: DiscordNotifier
) -> None:
    # A limit on the resource, shared with other bots: wait as told; it counts for no one else.
    discord.script[CHANNEL].append((429, {"retry_after": 0.5}, {"X-RateLimit-Scope": "shared"}))
    await notifier.send(CHANNEL, [_item()])
    first, second = discord.posts
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.5 - 0.05
