"""Real slack-sdk and python-telegram-bot clients against fake platforms over real HTTP."""

from __future__ import annotations

import html
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from telegram import Bot

from gexbot.adapters.notify import DeliveryError
from gexbot.adapters.pacing import Pacer
from gexbot.adapters.slack import SlackNotifier
from gexbot.adapters.telegram import TelegramNotifier
from gexbot.core.present.render import Rendered, render
from tests.fakes import FakeSlack, FakeTelegram
from tests.rulekit import alert_event

AT = datetime(2026, 11, 24, 12, 0, 3, tzinfo=UTC)
HOSTILE = '<b>pwn</b> & "x" <script>alert(1)</script> &amp;'


def alert(**kw: object) -> Rendered:
    return render(alert_event(**{"at": AT, "computed_at": AT, "distance_pct": -0.32, **kw}))


class NoWait(Pacer):
    """Pacing off, so error-path tests do not sleep."""

    def reserve(self, limits: object) -> float:
        return 0.0


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    yield fake
    await fake.stop()


def slack_notifier(fake: FakeSlack, token: str | None = None) -> SlackNotifier:
    client = AsyncWebClient(token=token or fake.token, base_url=fake.api_url)
    return SlackNotifier(client, pacer=NoWait(clock=time.monotonic))


_OPEN: list[TelegramNotifier] = []


async def telegram_notifier(fake: FakeTelegram, token: str | None = None) -> TelegramNotifier:
    bot = Bot(token or fake.token, base_url=fake.api_url)
    notifier = TelegramNotifier(bot, pacer=NoWait(clock=time.monotonic))
    _OPEN.append(notifier)
    return notifier


@pytest.fixture(autouse=True)
async def _close_bots() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().close()


# -- Slack ----------------------------------------------------------------------------------------


async def test_slack_posts_blocks_with_a_text_fallback(slack: FakeSlack) -> None:
    ts = await slack_notifier(slack).send("#gex-alerts", [alert()])
    post = slack.posts[0]
    assert ts == post.ts
    assert post.channel == "#gex-alerts"
    assert post.text == "🔴 BTCUSDT crossed above HVL 67,000"
    section = post.blocks[0]["text"]["text"]
    assert section.startswith("*🔴 BTCUSDT crossed above HVL 67,000*")
    assert "spot 67,213.5" in section
    assert "above HVL" in section
    assert post.blocks[1]["elements"][0]["text"] == "data 12:00:03 UTC · rule hvl-regime"


async def test_slack_escapes_hostile_text(slack: FakeSlack) -> None:
    await slack_notifier(slack).send("C0123", [alert(message=HOSTILE)])
    section = slack.posts[0].blocks[0]["text"]["text"]
    assert "<script>" not in section
    assert "&lt;script&gt;" in section


@pytest.mark.parametrize(
    "code",
    ["channel_not_found", "not_in_channel", "invalid_auth", "account_inactive", "is_archived"],
)
async def test_slack_permanent_errors(slack: FakeSlack, code: str) -> None:
    slack.script["C1"].append(code)
    with pytest.raises(DeliveryError) as info:
        await slack_notifier(slack).send("C1", [alert()])
    assert info.value.permanent
    assert code in str(info.value)


async def test_slack_429_carries_retry_after(slack: FakeSlack) -> None:
    slack.script["C1"].append((429, 7))
    with pytest.raises(DeliveryError) as info:
        await slack_notifier(slack).send("C1", [alert()])
    assert not info.value.permanent
    assert info.value.retry_after == 7


async def test_slack_5xx_is_transient(slack: FakeSlack) -> None:
    slack.script["C1"].append(503)
    with pytest.raises(DeliveryError) as info:
        await slack_notifier(slack).send("C1", [alert()])
    assert not info.value.permanent
    assert info.value.retry_after is None


async def test_slack_bad_token_is_permanent_and_never_echoed(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "xoxb-0000-wrong-token-value"
    with pytest.raises(DeliveryError) as info:
        await slack_notifier(slack, token=wrong).send("C1", [alert()])
    assert info.value.permanent
    assert "invalid_auth" in str(info.value)
    assert wrong not in str(info.value)
    assert info.value.__cause__ is None
    assert wrong not in caplog.text


async def test_slack_unreachable_is_transient() -> None:
    client = AsyncWebClient(token="xoxb-x", base_url="http://127.0.0.1:9/api/")
    with pytest.raises(DeliveryError) as info:
        await SlackNotifier(client, pacer=NoWait(clock=time.monotonic)).send("C1", [alert()])
    assert not info.value.permanent


async def test_slack_groups_several_alerts_in_one_post(slack: FakeSlack) -> None:
    await slack_notifier(slack).send("C1", [alert(), alert(symbol="ETHUSDT"), alert(kind="near")])
    post = slack.posts[0]
    assert post.blocks[0]["text"]["text"] == "3 alerts"
    assert post.text.startswith("3 alerts: ")


# -- Telegram -------------------------------------------------------------------------------------


async def test_telegram_sends_html_with_every_value_escaped(telegram: FakeTelegram) -> None:
    notifier = await telegram_notifier(telegram)
    msg_id = await notifier.send("42", [alert(message=HOSTILE)])
    sent = telegram.messages[0]
    assert msg_id == "1"
    assert sent.chat_id == "42"
    assert sent.parse_mode == "HTML"
    assert "<script>" not in sent.text
    assert html.escape(HOSTILE) in sent.text
    assert sent.text.startswith("<b>🔴 ")


@pytest.mark.parametrize(
    ("script", "says"),
    [("blocked", "bot blocked"), ("not_found", "chat not found")],
)
async def test_telegram_permanent_errors(telegram: FakeTelegram, script: str, says: str) -> None:
    telegram.script["42"].append(script)
    with pytest.raises(DeliveryError) as info:
        await (await telegram_notifier(telegram)).send("42", [alert()])
    assert info.value.permanent
    assert says in str(info.value)


async def test_telegram_bad_token_is_permanent_and_never_echoed(telegram: FakeTelegram) -> None:
    wrong = "999:wrong-secret-token"
    with pytest.raises(DeliveryError) as info:
        await (await telegram_notifier(telegram, token=wrong)).send("42", [alert()])
    assert info.value.permanent
    assert "GEXBOT_TELEGRAM_BOT_TOKEN" in str(info.value)
    assert wrong not in str(info.value)
    assert info.value.__cause__ is None


async def test_telegram_retry_after(telegram: FakeTelegram) -> None:
    telegram.script["42"].append((429, 5))
    with pytest.raises(DeliveryError) as info:
        await (await telegram_notifier(telegram)).send("42", [alert()])
    assert info.value.retry_after == 5
    assert not info.value.permanent


async def test_telegram_5xx_is_transient(telegram: FakeTelegram) -> None:
    telegram.script["42"].append(502)
    with pytest.raises(DeliveryError) as info:
        await (await telegram_notifier(telegram)).send("42", [alert()])
    assert not info.value.permanent


async def test_telegram_follows_a_group_migrated_to_a_supergroup(telegram: FakeTelegram) -> None:
    telegram.script["-100"].append(("migrate", -1001234))
    seen: list[tuple[str, str]] = []

    async def remember(old: str, new: str) -> None:
        seen.append((old, new))

    notifier = await telegram_notifier(telegram)
    notifier._on_migrated = remember
    await notifier.send("-100", [alert()])
    assert [m.chat_id for m in telegram.messages] == ["-1001234"]
    assert seen == [("-100", "-1001234")]
    await notifier.send("-100", [alert()])  # later sends go straight to the supergroup
    assert [m.chat_id for m in telegram.messages] == ["-1001234", "-1001234"]


async def test_telegram_long_group_is_cut_below_the_limit(telegram: FakeTelegram) -> None:
    items = [alert(message="&<>" * 300 + f" #{i}") for i in range(20)]
    await (await telegram_notifier(telegram)).send("42", items)
    text = telegram.messages[0].text
    assert len(text) <= 4096
    assert text.startswith("<b>20 alerts</b>")
    assert "more" in text.splitlines()[-1]
