"""The web console in a real browser: headless Chromium (Debian's) driven by Playwright, against
the real `gexbot run` process, a scripted market and a webhook receiver that refuses.

Covers: the login (a wrong token refused, the right one let in), the levels of the scripted
market on the page, a scripted move appearing under "Firing now" without a reload, and a dead
delivery showing its reason. `GEXBOT_SCREENSHOT=PATH` also saves the page as PNG there (the
README's picture is made this way).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes import FakeReceiver
from tests.processes import bot_env, clean_env, sim_server
from tests.test_e2e import _start
from tests.test_e2e_chat import _free_port
from tests.waiting import eventually

playwright_api = pytest.importorskip("playwright.async_api", reason="Playwright is not installed")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here (Debian's `chromium` package; .ci/run installs it)"
)

TOKEN = "browser-test-token-91c"
SCENARIO = """
walk: false
refresh: 0.5
steps:
  - {at: 0, spot: {BTCUSDT: 80000}, levels: {BTCUSDT: {hvl: 80500, call_resistance: 82000}}}
  - {at: 30, spot: {BTCUSDT: 81000}}  # late enough for a slow start and the login
"""
RULES = """
channels:
  tty: {terminal: true}
  flow: {webhook: flow}
rules:
  - id: btc-above-hvl
    symbols: [BTCUSDT]
    when: {above: hvl}
    notify: tty
  - id: btc-cross-to-flow
    symbols: [BTCUSDT]
    when: {crosses: hvl}
    notify: flow
"""


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[str]:
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    upstream = contextlib.ExitStack()
    url = upstream.enter_context(
        sim_server("--scenario", "scenario.yaml", env=clean_env(), cwd=tmp_path)
    )
    receiver = FakeReceiver()
    await receiver.start()
    receiver.script["/flow"].extend([400] * 5)  # the flow refuses: the delivery dies
    port = _free_port()
    env = bot_env(
        tmp_path,
        url,
        GEXBOT_WEBHOOK_FLOW_URL=f"{receiver.url}/flow",
        GEXBOT_HTTP_PORT=str(port),
        GEXBOT_HTTP_TOKEN=TOKEN,
    )
    process = await _start("run", env=env, cwd=tmp_path)

    async def serving() -> str | None:
        if process.returncode is not None:
            return "exited"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:  # the port opens a moment after start-up
            return None
        writer.close()
        return "serving"

    try:
        if await eventually(serving, timeout=60, what="the console's port to open") == "exited":
            _, err = await process.communicate()
            pytest.fail(f"the bot exited at start-up:\n{err.decode()[-3000:]}")
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, err = await process.communicate()
        upstream.close()
        await receiver.stop()
    assert TOKEN not in err.decode()


@pytest.mark.slow
async def test_the_console_in_a_browser(bot: str) -> None:
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            first = await page.goto(f"{bot}/")
            assert first is not None
            assert first.status == 401  # no token yet: the login form

            await page.fill("#token", "wrong-token")
            await page.click("button[type=submit]")
            await page.wait_for_selector("text=That token is not right.")

            await page.fill("#token", TOKEN)
            await page.click("button[type=submit]")
            await page.wait_for_selector("article[data-symbol=BTCUSDT]")
            card = page.locator("article[data-symbol=BTCUSDT]")
            assert "80,000" in await card.inner_text()
            assert "HVL" in await card.inner_text()
            assert await page.locator("[data-rule=btc-above-hvl]").count() == 0

            # The scripted move at 30 s: it must arrive with no reload of the page.
            await page.evaluate("window.loadedOnce = true")
            await page.wait_for_selector("[data-rule=btc-above-hvl]", timeout=30_000)
            assert await page.evaluate("window.loadedOnce === true")
            assert "81,000" in await card.inner_text()

            outbox = page.locator("#outbox")
            await page.wait_for_selector("#outbox .dead", timeout=30_000)
            assert "webhook flow: HTTP 400" in await outbox.inner_text()

            shot = os.environ.get("GEXBOT_SCREENSHOT")
            if shot:
                await page.screenshot(path=shot, full_page=True)
            phone = await browser.new_page(viewport={"width": 390, "height": 844})
            await phone.goto(f"{bot}/console/login")
            await phone.fill("#token", TOKEN)
            await phone.click("button[type=submit]")
            await phone.wait_for_selector("article[data-symbol=BTCUSDT]")
            width = await phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390  # nothing wider than a phone's screen

            # JavaScript off (and a script's bearer token): the page as served holds the data.
            plain = await browser.new_context(
                java_script_enabled=False, extra_http_headers={"Authorization": f"Bearer {TOKEN}"}
            )
            static = await plain.new_page()
            await static.goto(f"{bot}/")
            assert "81,000" in await static.locator("article[data-symbol=BTCUSDT]").inner_text()
            assert await static.locator("[data-rule=btc-above-hvl]").count() == 1
            await plain.close()
        finally:
            await browser.close()
