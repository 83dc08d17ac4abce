"""Webhooks: the payload (pure), the signed POST over real HTTP, and the settings and checks."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from gexbot.adapters.notify import DeliveryError
from gexbot.adapters.webhook import WebhookNotifier, WebhookTarget
from gexbot.core.alerts.events import ALL_SYMBOLS, WarningKind, warning_event
from gexbot.core.alerts.states import NotifyReason
from gexbot.core.present.render import render
from gexbot.core.present.webhook import PayloadKind, delivery_id, payload_kind
from gexbot.settings import load_settings, webhook_problems
from tests.fakes import FakeReceiver
from tests.rulekit import T0, alert_event

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = Draft202012Validator(
    json.loads((ROOT / "docs" / "webhook.schema.json").read_text()),
    format_checker=FormatChecker(),
)
SECRET = b"whsec-test-secret"
TOKEN_IN_URL = "T0KEN-in-the-path-9f3a"


def verify_from_docs() -> Callable[..., bool]:
    """The verification example of docs/webhooks.md, exactly as users copy it."""
    text = (ROOT / "docs" / "webhooks.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S)
    assert block is not None
    namespace: dict[str, Any] = {}
    exec(compile(block.group(1), "docs/webhooks.md", "exec"), namespace)  # noqa: S102 - our docs
    return namespace["verify"]  # type: ignore[no-any-return]


EVENTS = {
    PayloadKind.ALERT: alert_event(),
    PayloadKind.RESOLVED: alert_event(reason=NotifyReason.RESOLVED, seq=2, kind="below"),
    PayloadKind.WARNING: warning_event(
        WarningKind.FEED_DOWN, ALL_SYMBOLS, seq=1, reason=NotifyReason.FIRED, now=T0, text="down"
    ),
    PayloadKind.RECOVERY: warning_event(
        WarningKind.MISSING, "SOLUSDT", seq=2, reason=NotifyReason.RESOLVED, now=T0, text="back"
    ),
}


@pytest.mark.parametrize("kind", list(PayloadKind))
def test_each_kind_of_event_has_its_kind(kind: PayloadKind) -> None:
    assert payload_kind(EVENTS[kind]) is kind


def test_a_delivery_id_is_stable_and_names_one_delivery() -> None:
    one = delivery_id("hvl|BTCUSDT", 3, "webhook:N8N")
    assert one == delivery_id("hvl|BTCUSDT", 3, "webhook:N8N")
    others = {
        delivery_id("hvl|BTCUSDT", 4, "webhook:N8N"),
        delivery_id("hvl|ETHUSDT", 3, "webhook:N8N"),
        delivery_id("hvl|BTCUSDT", 3, "webhook:OPS"),
    }
    assert one not in others
    assert len(others) == 3


@pytest.fixture
async def receiver() -> AsyncIterator[FakeReceiver]:
    server = FakeReceiver()
    await server.start()
    yield server
    await server.stop()


def _notifier(
    receiver: FakeReceiver,
    *,
    secret: bytes | None = SECRET,
    timeout: float = 5.0,
    path: str = f"/hook/{TOKEN_IN_URL}",
    clock: Callable[[], float] = time.time,
) -> WebhookNotifier:
    target = WebhookTarget(f"{receiver.url}{path}", secret, timeout)
    return WebhookNotifier(httpx.AsyncClient(), {"n8n": target}, wall_clock=clock)


async def test_every_kind_is_posted_signed_and_valid_against_the_schema(
    receiver: FakeReceiver,
) -> None:
    notifier = _notifier(receiver)
    try:
        for event in EVENTS.values():
            await notifier.send("n8n", [render(event)])
    finally:
        await notifier.close()
    verify = verify_from_docs()
    assert len(receiver.calls) == 4
    for call, (kind, event) in zip(receiver.calls, EVENTS.items(), strict=True):
        body = json.loads(call.body)
        SCHEMA.validate(body)
        assert body["kind"] == kind.value
        assert body["rule"] == event.rule_id
        assert call.headers["Idempotency-Key"] == body["id"]
        assert call.headers["Content-Type"] == "application/json"
        assert verify(SECRET, call.headers["X-Gexbot-Signature"], call.body)
        assert not verify(b"another secret", call.headers["X-Gexbot-Signature"], call.body)
        assert not verify(SECRET, call.headers["X-Gexbot-Signature"], call.body + b" ")
    alert = json.loads(receiver.calls[0].body)
    assert alert["level"] == {"name": "hvl", "value": 67000.0}
    assert alert["title"].endswith("BTCUSDT crossed above HVL 67,000")
    assert alert["text"].splitlines()[0] == alert["title"]
    assert json.loads(receiver.calls[2].body)["symbol"] is None  # the whole feed


async def test_a_stale_signature_is_refused_by_the_example(receiver: FakeReceiver) -> None:
    notifier = _notifier(receiver, clock=lambda: time.time() - 600)
    try:
        await notifier.send("n8n", [render(alert_event())])
    finally:
        await notifier.close()
    call = receiver.calls[0]
    assert not verify_from_docs()(SECRET, call.headers["X-Gexbot-Signature"], call.body)


async def test_without_a_secret_nothing_is_signed(receiver: FakeReceiver) -> None:
    notifier = _notifier(receiver, secret=None)
    try:
        await notifier.send("n8n", [render(alert_event())])
    finally:
        await notifier.close()
    assert "X-Gexbot-Signature" not in receiver.calls[0].headers


def _http_date(seconds_ahead: float) -> str:
    return format_datetime(datetime.now(tz=UTC) + timedelta(seconds=seconds_ahead), usegmt=True)


@pytest.mark.parametrize(
    ("answer", "permanent", "retry_after"),
    [
        (500, False, None),
        (503, False, None),
        (408, False, None),
        ((429, {"Retry-After": "7"}), False, 7.0),
        ((429, {"Retry-After": "__date__"}), False, 30.0),
        (400, True, None),
        (401, True, None),
        (404, True, None),
        (410, True, None),
    ],
)
async def test_what_each_answer_means(
    receiver: FakeReceiver, answer: Any, permanent: bool, retry_after: float | None
) -> None:
    if isinstance(answer, tuple) and answer[1].get("Retry-After") == "__date__":
        answer = (429, {"Retry-After": _http_date(30)})
    receiver.script[f"/hook/{TOKEN_IN_URL}"].append(answer)
    notifier = _notifier(receiver)
    try:
        with pytest.raises(DeliveryError) as caught:
            await notifier.send("n8n", [render(alert_event())])
    finally:
        await notifier.close()
    assert caught.value.permanent is permanent
    if retry_after is None:
        assert caught.value.retry_after is None
    else:
        assert caught.value.retry_after == pytest.approx(retry_after, abs=1.5)
    assert TOKEN_IN_URL not in str(caught.value)
    assert "127.0.0.1" not in str(caught.value)


async def test_a_slow_receiver_times_out_and_is_retried(receiver: FakeReceiver) -> None:
    receiver.script[f"/hook/{TOKEN_IN_URL}"].append((204, {}, 2.0))
    notifier = _notifier(receiver, timeout=0.3)
    try:
        with pytest.raises(DeliveryError) as caught:
            await notifier.send("n8n", [render(alert_event())])
    finally:
        await notifier.close()
    assert not caught.value.permanent
    assert str(caught.value) == "webhook n8n: no answer within 0.3s"


async def test_redirects_are_followed_only_within_the_same_origin(receiver: FakeReceiver) -> None:
    path = f"/hook/{TOKEN_IN_URL}"
    receiver.script[path].append((308, {"Location": "/moved"}))
    receiver.script[path].append((302, {"Location": "/moved"}))  # a 302 would turn POST to GET
    receiver.script[path].append((307, {"Location": "http://example.invalid/steal"}))
    notifier = _notifier(receiver)
    try:
        await notifier.send("n8n", [render(alert_event())])  # 308 → /moved → 204
        for _ in range(2):
            with pytest.raises(DeliveryError) as caught:
                await notifier.send("n8n", [render(alert_event())])
            assert caught.value.permanent
            assert "GEXBOT_WEBHOOK_N8N_URL" in str(caught.value)
            assert "example.invalid" not in str(caught.value)
    finally:
        await notifier.close()
    assert [c.path for c in receiver.calls] == [path, "/moved", path, path]
    assert receiver.calls[1].body == receiver.calls[0].body  # the same body, re-POSTed


async def test_a_refused_connection_is_retried_without_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    target = WebhookTarget(f"http://127.0.0.1:9/{TOKEN_IN_URL}", SECRET, 2.0)
    notifier = WebhookNotifier(httpx.AsyncClient(), {"n8n": target}, wall_clock=time.time)
    try:
        with pytest.raises(DeliveryError) as caught:
            await notifier.send("n8n", [render(alert_event())])
    finally:
        await notifier.close()
    assert not caught.value.permanent
    assert str(caught.value) == "webhook n8n: request failed (ConnectError)"
    assert TOKEN_IN_URL not in caplog.text
    assert SECRET.decode() not in caplog.text


async def test_a_webhook_without_a_usable_url_fails_once_naming_the_variable() -> None:
    notifier = WebhookNotifier(
        httpx.AsyncClient(),
        {},
        wall_clock=time.time,
        problems={"DESK_OPS": "GEXBOT_WEBHOOK_DESK_OPS_URL: must be an http:// or https:// URL"},
    )
    try:
        with pytest.raises(DeliveryError) as bad:
            await notifier.send("desk-ops", [render(alert_event())])
        with pytest.raises(DeliveryError) as unset:
            await notifier.send("other", [render(alert_event())])
    finally:
        await notifier.close()
    assert bad.value.permanent
    assert unset.value.permanent
    assert "GEXBOT_WEBHOOK_DESK_OPS_URL: must be an http" in str(bad.value)
    assert str(unset.value) == "webhook other: GEXBOT_WEBHOOK_OTHER_URL is not set"


def test_settings_gather_each_webhook_from_the_environment_and_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "GEXBOT_WEBHOOK_DESK_OPS_URL=https://from-dotenv/\n"
        "GEXBOT_WEBHOOK_DESK_OPS_TIMEOUT=3\n"
        "GEXBOT_WEBHOOK_N8N_URL=https://n8n/\n"
    )
    monkeypatch.setenv("GEXBOT_WEBHOOK_DESK_OPS_URL", "https://from-env/")
    monkeypatch.setenv("GEXBOT_WEBHOOK_DESK_OPS_SECRET", "s3")
    settings = load_settings(env_file=env)
    assert sorted(settings.webhooks) == ["DESK_OPS", "N8N"]
    desk = settings.webhook("desk-ops")
    assert desk is not None
    assert desk.url is not None
    assert desk.secret is not None
    assert desk.url.get_secret_value() == "https://from-env/"  # the environment wins
    assert (desk.secret.get_secret_value(), desk.timeout) == ("s3", "3")
    assert "from-env" not in repr(settings)


@pytest.mark.parametrize(
    ("variables", "problems"),
    [
        ({}, ["GEXBOT_WEBHOOK_N8N_URL: required by the webhook `n8n`; set it"]),
        ({"url": "https://ok/"}, []),
        (
            {"url": f"ftp://{TOKEN_IN_URL}@host/"},
            ["GEXBOT_WEBHOOK_N8N_URL: must be an http:// or https:// URL"],
        ),
        (
            {"url": "https://ok/", "timeout": "61"},
            ["GEXBOT_WEBHOOK_N8N_TIMEOUT: seconds, more than 0 and at most 60 (got '61')"],
        ),
        (
            {"url": "https://ok/", "secret": ""},
            ["GEXBOT_WEBHOOK_N8N_SECRET: is empty; unset it or set a secret"],
        ),
    ],
)
def test_webhook_problems_name_the_variable_never_the_value(
    variables: dict[str, str], problems: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for part, value in variables.items():
        monkeypatch.setenv(f"GEXBOT_WEBHOOK_N8N_{part.upper()}", value)
    settings = load_settings(env_file=None)
    assert webhook_problems("n8n", settings.webhook("n8n")) == problems


async def test_the_example_receiver_verifies_dedupes_and_prints(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "docs" / "examples" / "webhook_receiver.py"),
        str(port),
        env={**os.environ, "GEXBOT_WEBHOOK_SECRET": SECRET.decode()},
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        assert b"listening" in await asyncio.wait_for(proc.stdout.readline(), timeout=10)
        good = WebhookTarget(f"http://127.0.0.1:{port}/", SECRET, 5.0)
        forged = WebhookTarget(f"http://127.0.0.1:{port}/", b"not the secret", 5.0)
        notifier = WebhookNotifier(
            httpx.AsyncClient(), {"ok": good, "forged": forged}, wall_clock=time.time
        )
        try:
            alert = render(alert_event())
            await notifier.send("ok", [alert])
            await notifier.send("ok", [alert])  # a retry of the same delivery
            with pytest.raises(DeliveryError) as refused:
                await notifier.send("forged", [render(alert_event(seq=2))])
        finally:
            await notifier.close()
        assert refused.value.permanent  # 401: not retried
    finally:
        proc.terminate()
        out, _ = await proc.communicate()
    printed = out.decode().splitlines()
    assert printed == ["   alert  🔴 BTCUSDT crossed above HVL 67,000"]
