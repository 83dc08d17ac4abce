"""`/levels` text reply time over Telegram, Slack and Discord while charts render.

Fake Telegram (getUpdates long poll, sendMessage, sendPhoto) and fake Slack (Socket Mode,
file uploads) on 127.0.0.1, and the simulator in its own process. Each `/levels SYMBOL` asks
for a chart and the chart cache keeps none (ttl 0), so the renderer is drawing the whole
time the replies are timed: a reply is timed from the moment the command is handed to the
fake platform to the moment the fake has the text (Discord: a signed interaction POSTed to the
Interactions endpoint until its response; Discord allows 3 s). Prints p50 and p99 per
platform, the charts delivered, and the renderer process's peak memory.

    .venv/bin/python bench/commands.py [--n 100] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from nacl.signing import SigningKey
from sqlalchemy import Engine

from bench.profiling import profile_if_asked
from gexbot.adapters.backquant import BackQuantClient, build_http_client
from gexbot.adapters.discord import DiscordRest, use_api
from gexbot.charts.cache import ChartCache
from gexbot.charts.renderer import ChartRenderer
from gexbot.chat.discord import DiscordInteractions
from gexbot.chat.service import ChatService
from gexbot.core.language.rulefile import build_ruleset, parse_rule_file
from gexbot.core.market.snapshot import BundleSnapshot
from gexbot.loops.health import HealthServer, Metrics
from gexbot.store.engine import make_engine, migrate
from tests.chatkit import chat_service, chat_settings, slack_commands, telegram_commands
from tests.fakes import FakeDiscord, FakeSlack, FakeTelegram
from tests.processes import sim_server

USER = 111
API_KEY = "bench"
SYMBOLS = ["btc", "eth", "sol", "hype"]
RULES = build_ruleset(
    [
        parse_rule_file(
            "channels: {tty: {console: true}}\n"
            "rules: [{id: r, when: {crosses: hvl}, notify: tty}]\n",
            "r.yaml",
        )
    ]
)


def _now() -> datetime:
    return datetime.now(tz=UTC)


def _fresh(bundle: BundleSnapshot) -> BundleSnapshot:
    return replace(bundle, received_at=_now())


def _percentiles(times: list[float]) -> str:
    times = sorted(times)
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
    return f"p50 {times[len(times) // 2]:.1f} ms, p99 {p99:.1f} ms, max {times[-1]:.1f} ms"


async def _telegram(n: int, service: ChatService, engine: Engine) -> tuple[list[float], int]:
    telegram = FakeTelegram()
    await telegram.start()
    settings = chat_settings(
        telegram=telegram, telegram_allowed_users=[USER], telegram_poll_timeout=5
    )
    loop = telegram_commands(settings, engine, service)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    times = []
    for i in range(n):
        sent = len(telegram.messages)
        t0 = time.monotonic()
        telegram.push_command(f"/levels {SYMBOLS[i % 4]}", user=USER)
        while len(telegram.messages) == sent:  # noqa: ASYNC110 - the fake has no hook
            await asyncio.sleep(0.001)
        times.append((telegram.messages[-1].at - t0) * 1000)
    deadline = time.monotonic() + 60
    while len(telegram.photos) < n and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    stop.set()
    await task  # waits for the charts still being drawn
    await telegram.stop()
    return times, len(telegram.photos)


async def _slack(n: int, service: ChatService, engine: Engine) -> tuple[list[float], int]:
    slack = FakeSlack()
    await slack.start()
    commands = slack_commands(chat_settings(slack=slack, instance="bench"), engine, service)
    stop = asyncio.Event()
    task = asyncio.create_task(commands.run(stop))
    times = []
    for i in range(n):
        payload = {
            "command": "/gex",
            "text": f"levels {SYMBOLS[i % 4]}",
            "user_id": "U1",
            "channel_id": "C1",
            "trigger_id": f"T{i}",
        }
        t0 = time.monotonic()
        ack = await slack.envelope("slash_commands", payload)  # the reply rides on the ack
        times.append((time.monotonic() - t0) * 1000)
        assert ack["payload"]["text"].startswith("```"), ack
    deadline = time.monotonic() + 60
    while len(slack.uploads) < n and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    stop.set()
    await task
    await slack.stop()
    return times, len(slack.uploads)


async def _discord(n: int, service: ChatService, _engine: Engine) -> tuple[list[float], int]:
    discord = FakeDiscord()
    await discord.start()
    use_api(discord.api_url)
    rest = DiscordRest(discord.token)
    key = SigningKey.generate()
    endpoint = DiscordInteractions(
        service, rest, public_key=key.verify_key.encode().hex(), wall_clock=time.time
    )
    server = HealthServer(Metrics(), lambda: (True, {}), routes=[endpoint.add_routes])
    url = await server.start("127.0.0.1", 0) + "/discord/interactions"
    times = []
    async with httpx.AsyncClient() as http:
        for i in range(n):
            option = {"name": "symbols", "type": 3, "value": SYMBOLS[i % 4]}
            body = json.dumps(
                {
                    "type": 2,
                    "id": str(10**18 + i),
                    "application_id": discord.application_id,
                    "token": f"t{i}",
                    "channel_id": "123456789012345678",
                    "user": {"id": "333333333333333333"},
                    "data": {"name": "gex", "options": [{"name": "levels", "options": [option]}]},
                }
            ).encode()
            ts = str(int(time.time()))
            headers = {
                "X-Signature-Ed25519": key.sign(ts.encode() + body).signature.hex(),
                "X-Signature-Timestamp": ts,
            }
            t0 = time.monotonic()
            resp = await http.post(url, content=body, headers=headers)
            times.append((time.monotonic() - t0) * 1000)
            assert resp.json()["type"] == 4, resp.text  # answered, not deferred
    deadline = time.monotonic() + 60
    while sum(1 for p in discord.posts if p.files) < n and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await endpoint.close()
    await server.stop()
    await rest.close()
    await discord.stop()
    return times, sum(1 for p in discord.posts if p.files)


async def main(n: int, url: str) -> None:
    renderer = ChartRenderer()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'c.db'}")
        migrate(engine)
        async with build_http_client(url, API_KEY) as http:
            client = BackQuantClient(
                http, wall_clock=time.time, api_key=API_KEY, rng=random.Random(0)
            )
            latest = await client.bundle([s.upper() + "USDT" for s in SYMBOLS])
            charts = ChartCache(
                client, engine, renderer, ttl=0, clock=_now, monotonic=time.monotonic
            )
            service = chat_service(
                chat_settings(symbols=list(latest.symbols)),
                engine,
                client,
                rules=RULES,
                latest=lambda: _fresh(latest),
                charts=charts,
            )
            await charts.warm_up()  # `gexbot run` does this at start
            platforms = (("Telegram", _telegram), ("Slack", _slack), ("Discord", _discord))
            for name, run in platforms:
                times, delivered = await run(n, service, engine)
                print(
                    f"/levels over {name}, {n} commands, a chart drawn for each: "
                    f"text reply {_percentiles(times)}; {delivered} charts delivered"
                )
            await charts.close()
        engine.dispose()
    print(
        f"renderer process: peak RSS {renderer.peak_rss_mb or 0:.1f} MB, "
        f"{renderer.restarts} restart(s)"
    )


if __name__ == "__main__":
    with profile_if_asked():
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--n", type=int, default=100)
        with sim_server("--api-key", API_KEY, "--rate-limit", "100000") as upstream:
            asyncio.run(main(parser.parse_args().n, upstream))
