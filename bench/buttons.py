"""Button presses under load: 200 presses over 10 s across Telegram, Slack and Discord while
alerts keep flowing, each button pressed twice (by two people) so doubles are tried.

The bot's real parts answer them: the Telegram command loop (PTB) against the fake's
getUpdates, the Slack commands over Socket Mode, the signed Discord Interactions endpoint; one
SQLite database behind all three. Each ack is timed from the press reaching the bot's side of
the wire to the platform's acknowledgement (Telegram's answerCallbackQuery arriving at the
fake, Slack's socket ack, Discord's HTTP answer). Prints p50/p99 per platform and the doubles
found (rows done twice; 0 is the goal).

    .venv/bin/python bench/buttons.py
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from aiohttp import web
from nacl.signing import SigningKey
from sqlalchemy import func, select

from gexbot.adapters.backquant import BackQuantClient, build_http_client
from gexbot.app import (
    build_discord_commands,
    build_notifiers,
    build_slack_commands,
    build_telegram_commands,
    real_runtime,
)
from gexbot.chat.buttons import ButtonPresses
from gexbot.core.alerts.buttons import Action, button_data
from gexbot.core.language.rulefile import build_ruleset, parse_rule_file
from gexbot.core.present.render import render
from gexbot.loops.leadership import SoleInstance
from gexbot.sim.market import Simulator
from gexbot.sim.server import SimServer
from gexbot.store.buttons import button_token
from gexbot.store.engine import make_engine, migrate
from gexbot.store.tables import button_presses, mutes
from tests.chatkit import chat_service, chat_settings
from tests.fakes import FakeDiscord, FakeSlack, FakeTelegram, TelegramMessage
from tests.rulekit import alert_event

PRESSES = 200
SECONDS = 10.0
RULES = build_ruleset(
    [
        parse_rule_file(
            "channels: {tty: {terminal: true}}\n"
            "rules: [{id: above-cr, when: {above: call_resistance}, notify: tty}]\n",
            "r.yaml",
        )
    ]
)
CHATS = {"telegram": "111", "slack": "C0DESK", "discord": "555555555555555555"}
USERS = {"telegram": (111, 222), "slack": ("U1", "U2"), "discord": ("3" * 18, "4" * 18)}


async def main() -> None:  # noqa: PLR0915 - one scripted run, read top to bottom
    """Run the load and print the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'b.db'}")
        migrate(engine)
        sim = SimServer(Simulator(clock=time.time), api_key="k")
        await sim.start()
        telegram, slack, discord = FakeTelegram(), FakeSlack(), FakeDiscord()
        for fake in (telegram, slack, discord):
            await fake.start()
        key = SigningKey.generate()
        settings = chat_settings(
            telegram=telegram,
            slack=slack,
            telegram_allowed_users=list(USERS["telegram"]),
            discord_bot_token=discord.token,
            discord_api_url=discord.api_url,
            discord_application_id=discord.application_id,
            discord_public_key=key.verify_key.encode().hex(),
        )
        async with build_http_client(sim.url, "k") as http:
            client = BackQuantClient(http, wall_clock=time.time, api_key="k", rng=random.Random(0))

            async def no_chart(_symbol: str) -> bytes:
                return b"\x89PNG"

            chat = chat_service(settings, engine, client, rules=RULES, charts=no_chart)
            presses = ButtonPresses(
                engine, rules=lambda: RULES, service=chat, clock=lambda: datetime.now(UTC)
            )
            runtime = real_runtime()
            tg = build_telegram_commands(
                settings,
                engine=engine,
                chat=chat,
                leadership=SoleInstance("r1"),
                runtime=runtime,
                presses=presses,
            )
            sl = build_slack_commands(
                settings, chat=chat, engine=engine, runtime=runtime, presses=presses
            )
            dc = build_discord_commands(
                settings,
                chat=chat,
                leadership=SoleInstance("r1"),
                notifiers=(notifiers := build_notifiers(settings, console=None, runtime=runtime)),
                runtime=runtime,
                presses=presses,
            )
            assert tg is not None
            assert sl is not None
            assert dc is not None
            assert dc.interactions is not None
            app = web.Application()
            dc.interactions.add_routes(app)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            discord_url = f"http://127.0.0.1:{runner.addresses[0][1]}/discord/interactions"
            fingerprint = presses.fingerprint("above-cr", engine.connect())
            assert fingerprint is not None
            tokens: list[tuple[str, str]] = []
            with engine.begin() as conn:
                for i in range(PRESSES // 2):
                    platform = ("telegram", "slack", "discord")[i % 3]
                    token = button_token(
                        conn,
                        outbox_id=i + 1,
                        alert_key=f"above-cr|S{i}",
                        rule_id="above-cr",
                        symbol="BTCUSDT",
                        fingerprint=fingerprint,
                        platform=platform,
                        chat_id=CHATS[platform],
                        now=datetime.now(UTC),
                    )
                    tokens.append((platform, token))
            stop = asyncio.Event()
            loops = [asyncio.create_task(tg.run(stop)), asyncio.create_task(sl.run(stop))]
            await asyncio.sleep(1.0)  # the Socket Mode connection and the first long poll
            acks: dict[str, list[float]] = {"telegram": [], "slack": [], "discord": []}
            flowing = asyncio.create_task(_alerts_flow(stop, telegram))
            jobs = []
            order = [(p, t, user) for p, t in tokens for user in (0, 1)]
            random.Random(7).shuffle(order)
            gap = SECONDS / len(order)
            for n, (platform, token, who) in enumerate(order):
                data = button_data(token, Action.SNOOZE)
                user = USERS[platform][who]
                jobs.append(
                    asyncio.create_task(
                        _press(
                            platform,
                            data=data,
                            user=user,
                            n=n,
                            fakes=(telegram, slack),
                            discord_url=discord_url,
                            key=key,
                            acks=acks,
                        )
                    )
                )
                await asyncio.sleep(gap)
            await asyncio.gather(*jobs)
            stop.set()
            await flowing
            for loop in loops:
                await loop
            await dc.interactions.close()
            await runner.cleanup()
            for notifier in notifiers.values():
                await notifier.close()
        with engine.connect() as conn:
            done = conn.execute(select(func.count()).select_from(button_presses)).scalar_one()
            muted = conn.execute(select(func.count()).select_from(mutes)).scalar_one()
        for fake in (telegram, slack, discord):
            await fake.stop()
        await sim.stop()
        engine.dispose()
    print(f"{len(order)} presses of {len(tokens)} buttons over {SECONDS:g} s (each pressed twice)")
    for platform, times in acks.items():
        times.sort()
        print(
            f"  {platform:9} {len(times):3} acks: p50 {statistics.median(times):6.1f} ms, "
            f"p99 {times[int(0.99 * (len(times) - 1))]:6.1f} ms (target p99 ≤ 1,000 ms)"
        )
    print(f"  presses done: {done} (one per button: {len(tokens)}); mutes set: {muted}")
    print(f"  doubles: {done - len(tokens)} (target 0)")


async def _press(
    platform: str,
    *,
    data: str,
    user: Any,
    n: int,
    fakes: tuple[FakeTelegram, FakeSlack],
    discord_url: str,
    key: SigningKey,
    acks: dict[str, list[float]],
) -> None:
    telegram, slack = fakes
    t0 = time.perf_counter()
    if platform == "telegram":
        before = len(telegram.answers)
        message = TelegramMessage("111", "alert", "HTML", 1, time.monotonic())
        telegram.push_press(data, user=user, message=message, username=f"u{user}")
        while len(telegram.answers) <= before:  # noqa: ASYNC110 - watching the fake's record
            await asyncio.sleep(0.002)
    elif platform == "slack":
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": f"u{user}"},
            "channel": {"id": "C0DESK", "name": "gex-alerts"},
            "message": {"ts": "1.1", "text": "alert", "blocks": []},
            "actions": [{"type": "button", "value": data, "action_ts": f"{n}.0"}],
        }
        await slack.envelope("interactive", payload)
    else:
        body = json.dumps(
            {
                "type": 3,
                "id": str(n),
                "application_id": "111111111111111111",
                "token": f"t{n}",
                "channel_id": CHATS["discord"],
                "member": {"user": {"id": user, "username": "u"}},
                "message": {"id": "1", "embeds": [{"title": "alert"}], "components": []},
                "data": {"custom_id": data, "component_type": 2},
            }
        ).encode()
        stamp = str(int(time.time()))
        headers = {
            "X-Signature-Ed25519": key.sign(stamp.encode() + body).signature.hex(),
            "X-Signature-Timestamp": stamp,
        }
        async with httpx.AsyncClient() as http:
            resp = await http.post(discord_url, content=body, headers=headers)
            assert resp.status_code == 200
    acks[platform].append((time.perf_counter() - t0) * 1000)


async def _alerts_flow(stop: asyncio.Event, telegram: FakeTelegram) -> None:
    """Alerts keep going out meanwhile: a send every 50 ms to the same fake."""
    settings = chat_settings(telegram=telegram)
    notifier = build_notifiers(settings, console=None, runtime=real_runtime())["telegram"]
    at = datetime.now(UTC)
    n = 0
    while not stop.is_set():
        n += 1
        event = alert_event(seq=n, at=at + timedelta(seconds=n))
        await notifier.send("111", [render(event)])
        await asyncio.sleep(0.05)
    await notifier.close()


if __name__ == "__main__":
    asyncio.run(main())
