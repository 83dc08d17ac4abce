"""Webhooks through the real process: `gexbot run` posts to a local receiver over real HTTP.

One run covers the issue's list: every body valid against the committed schema and its
signature verifiable with the docs' example; a 500 and a 429 retried (the 429 after the wait
it told); a 400 dead once and reported on the warnings route; a SIGKILL and a restart with
nothing posted twice beyond the documented send→mark window; URLs and secrets never logged.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from gexbot.store.tables import outbox
from tests.fakes import FakeReceiver
from tests.test_crash import crossing_scenario
from tests.test_e2e import _start
from tests.test_webhook import SCHEMA, SECRET, verify_from_docs
from tests.waiting import until

TOKEN = "s3cr3t-path-token-77"
RULES = """
channels:
  alerts: {webhook: n8n}
  broken: {webhook: broken-flow}
  ops: {webhook: ops}
warnings: {notify: [ops]}
rules:
  - id: hvl-cross
    symbols: [BTCUSDT]
    when: {crosses: hvl}
    notify: alerts
    cooldown: 0s
  - id: hvl-once
    symbols: [BTCUSDT]
    when: {crosses: hvl}
    notify: broken
    cooldown: 1h
"""


@pytest.mark.slow
async def test_webhooks_from_the_real_process(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(crossing_scenario(60))  # a cross every second for 30 s
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("GEXBOT_")}
    sim = await _start(
        "sim-server", "--port", "0", "--scenario", str(scenario), env=base_env, cwd=tmp_path
    )
    assert sim.stdout is not None
    match = re.search(r"(http://127\.0\.0\.1:\d+)", (await sim.stdout.readline()).decode())
    assert match
    receiver = FakeReceiver()
    await receiver.start()
    alerts_path = f"/alerts/{TOKEN}"
    receiver.script[alerts_path].extend([500, (429, {"Retry-After": "2"})])
    receiver.script["/broken"].extend([400] * 5)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    db = tmp_path / "bot.db"
    env = dict(
        base_env,
        GEXBOT_API_URL=match.group(1),
        GEXBOT_API_KEY="demo",
        GEXBOT_SYMBOLS="BTCUSDT",
        GEXBOT_POLL_INTERVAL="0.5",
        GEXBOT_DATABASE_URL=f"sqlite:///{db}",
        GEXBOT_RULES=str(tmp_path / "rules"),
        GEXBOT_WEBHOOK_N8N_URL=f"{receiver.url}{alerts_path}",
        GEXBOT_WEBHOOK_N8N_SECRET=SECRET.decode(),
        GEXBOT_WEBHOOK_BROKEN_FLOW_URL=f"{receiver.url}/broken",
        GEXBOT_WEBHOOK_OPS_URL=f"{receiver.url}/ops",
        GEXBOT_WEBHOOK_OPS_SECRET=SECRET.decode(),
    )
    logs = []
    try:
        bot = await _start("run", env=env, cwd=tmp_path)
        await until(
            lambda: len(receiver.delivered(alerts_path)) >= 3,
            timeout=30,
            what="three alerts delivered after the 500 and the 429",
        )
        await until(lambda: receiver.delivered("/ops"), timeout=15, what="the dead-letter report")
        bot.send_signal(signal.SIGKILL)
        logs.append((await bot.communicate())[1])
        before = len(receiver.delivered(alerts_path))
        bot = await _start("run", env=env, cwd=tmp_path)
        await until(
            lambda: len(receiver.delivered(alerts_path)) >= before + 3,
            timeout=30,
            what="alerts after the restart",
        )
        bot.send_signal(signal.SIGTERM)
        logs.append((await asyncio.wait_for(bot.communicate(), timeout=20))[1])
        assert bot.returncode == 0
    finally:
        sim.send_signal(signal.SIGTERM)
        await sim.wait()
        await receiver.stop()

    verify = verify_from_docs()
    for call in receiver.calls:
        SCHEMA.validate(json.loads(call.body))
        if call.path != "/broken":
            assert verify(SECRET, call.headers["X-Gexbot-Signature"], call.body), call.path
        assert "X-Gexbot-Signature" in call.headers or call.path == "/broken"

    # The 500 and the 429 are retried under the same key; the 429 after the wait it told.
    calls = [c for c in receiver.calls if c.path == alerts_path]
    for status in (500, 429):
        failed = next(c for c in calls if c.status == status)
        key = failed.headers["Idempotency-Key"]
        retry = next(c for c in calls if c.at > failed.at and c.headers["Idempotency-Key"] == key)
        if status == 429:
            assert retry.at - failed.at >= 2.0 - 0.1
        assert any(c.headers["Idempotency-Key"] == key for c in receiver.delivered(alerts_path))

    # The 400: dead once, never retried, reported once on the warnings route.
    assert len([c for c in receiver.calls if c.path == "/broken"]) == 1
    reports = [json.loads(c.body) for c in receiver.delivered("/ops")]
    dead = [r for r in reports if r["warning"] == "delivery"]
    assert len(dead) == 1
    assert dead[0]["kind"] == "warning"
    assert "HTTP 400" in dead[0]["text"]
    assert TOKEN not in dead[0]["text"]

    # Across the SIGKILL: a key delivered twice only from the send→mark window (one batch).
    delivered = Counter(c.headers["Idempotency-Key"] for c in receiver.delivered(alerts_path))
    assert sum(n - 1 for n in delivered.values()) <= 1, delivered
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        states = Counter(
            (r.channel, r.state) for r in conn.execute(select(outbox.c.channel, outbox.c.state))
        )
    engine.dispose()
    assert states[("broken", "dead")] == 1
    assert states[("alerts", "dead")] == 0

    text = b"".join(logs).decode()
    assert "delivery to alerts failed (webhook n8n: HTTP 500)" in text
    assert TOKEN not in text
    assert SECRET.decode() not in text
    assert f"{receiver.url}/" not in text
