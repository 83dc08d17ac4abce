"""The chart renderer process: charts drawn outside the bot's interpreter, restarted when it
hangs or crashes, and the event loop never held while it draws."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import time
from collections.abc import AsyncIterator

import pytest

from gexbot.charts.renderer import ChartError, ChartRenderer
from tests.rulekit import snapshot


@pytest.fixture
async def renderer(request: pytest.FixtureRequest) -> AsyncIterator[ChartRenderer]:
    target = getattr(request, "param", "tests.render_faults:png_of_symbol")
    r = ChartRenderer(target=target, timeout=2.0)
    yield r
    await r.close()


async def test_charts_are_drawn_in_another_process(renderer: ChartRenderer) -> None:
    png = await renderer.render(snapshot(100, hvl=99, call_resistance=105), [])
    symbol, levels, prices, pid = png.decode().split()[1:]
    assert (symbol, levels, prices) == ("BTCUSDT", "2", "0")
    assert int(pid) != os.getpid()
    again = await renderer.render(snapshot(100, symbol="ETHUSDT"), [])
    assert again.decode().split()[-1] == pid  # one long-lived renderer
    assert renderer.peak_rss_mb is not None
    assert renderer.peak_rss_mb > 0


@pytest.mark.parametrize("renderer", ["tests.render_faults:hang_on_eth"], indirect=True)
async def test_a_hung_render_is_abandoned_and_the_renderer_restarted(
    renderer: ChartRenderer,
) -> None:
    first = (await renderer.render(snapshot(1.0), [])).decode().split()[-1]
    with pytest.raises(ChartError, match="did not answer within 2s"):
        await renderer.render(snapshot(1.0, symbol="ETHUSDT"), [])
    after = (await renderer.render(snapshot(1.0), [])).decode().split()[-1]
    assert after != first  # a new process


@pytest.mark.parametrize("renderer", ["tests.render_faults:crash_on_sol"], indirect=True)
async def test_a_crashed_renderer_is_restarted(renderer: ChartRenderer) -> None:
    with pytest.raises(ChartError, match="crashed"):
        await renderer.render(snapshot(1.0, symbol="SOLUSDT"), [])
    assert (await renderer.render(snapshot(1.0), [])).startswith(b"PNG BTCUSDT")


async def test_ctrl_c_in_the_terminal_leaves_the_renderer_to_the_bot(
    renderer: ChartRenderer,
) -> None:
    # A terminal's Ctrl-C goes to the whole process group; the bot decides when to stop.
    await renderer.warm_up()
    pid = renderer.pid
    assert pid is not None
    os.kill(pid, signal.SIGINT)
    png = await renderer.render(snapshot(1.0), [])
    assert png.decode().split()[-1] == str(pid)
    assert renderer.restarts == 0


@pytest.mark.parametrize("renderer", ["tests.render_faults:fail_on_hype"], indirect=True)
async def test_a_failing_render_fails_one_chart_only(renderer: ChartRenderer) -> None:
    pid = (await renderer.render(snapshot(1.0), [])).decode().split()[-1]
    with pytest.raises(ChartError, match="ValueError: no levels to draw"):
        await renderer.render(snapshot(1.0, symbol="HYPEUSDT"), [])
    assert (await renderer.render(snapshot(1.0), [])).decode().split()[-1] == pid


PROBE = """
import asyncio, sys
from gexbot.charts.renderer import ChartRenderer
from tests.rulekit import snapshot

async def main() -> None:
    renderer = ChartRenderer(timeout=30)
    png = await renderer.render(snapshot(80000, hvl=79000, call_resistance=82000), [])
    await renderer.close()
    print(png[:4] == b"\\x89PNG", "matplotlib" in sys.modules)

asyncio.run(main())
"""


async def test_the_real_chart_is_drawn_without_matplotlib_in_the_bot() -> None:
    # The probe is read from stdin: a bot started from any script (no `__main__` file at
    # all here) still gets its charts.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(PROBE.encode()), timeout=60)
    assert out.decode().split() == ["True", "False"]


async def test_the_event_loop_runs_while_a_chart_renders() -> None:
    renderer = ChartRenderer(timeout=30)
    await renderer.warm_up()
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.005)

    ticker = asyncio.create_task(tick())
    try:
        for _ in range(5):
            await renderer.render(snapshot(80000, hvl=79000, call_resistance=82000), [])
    finally:
        ticker.cancel()
        await renderer.close()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    # In-process, every render held the loop for ~0.17 s; out of process the loop keeps
    # ticking (one long gap is allowed: this machine's two cores are shared).
    assert sum(gap > 0.1 for gap in gaps) <= 1, sorted(gaps)[-5:]
