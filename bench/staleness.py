"""Data age at evaluation, detection-to-delivery latency, and memory over 1,000 cycles.

1. Age: the simulator on BackQuant's 30 s refresh (on a virtual clock, so 2 simulated hours
   take a second), polled by a fixed 30 s loop and by the freshness-aware schedule at the
   same budget. Prints median and p95 age of the data when evaluated and requests per minute.
2. Latency: the real bot (HTTP client, pipeline, dispatcher, slack-sdk) against the simulator
   and a fake Slack; from a response's arrival to the fake receiving the post, p50 and p99.
3. Soak: 1,000 real cycles; RSS at cycles 200 and 1,000.

    .venv/bin/python bench/staleness.py [--latency]

Part 2 runs twice: on BackQuant alone and with `GEXBOT_SOURCE=both` (the chains behind it and
a cross-check every 5 s); `--latency` runs part 2 alone.
"""

from __future__ import annotations

import asyncio
import io
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console

from bench.profiling import profile_if_asked
from gexbot.adapters.backquant import BackQuantClient
from gexbot.app import Fakes, compose, real_runtime
from gexbot.core.market.schedule import RefreshModel, next_poll
from gexbot.core.market.snapshot import BundleSnapshot
from gexbot.loops.rules import load_rules
from gexbot.settings import load_settings
from gexbot.sim.market import SimConfig, Simulator
from gexbot.sim.server import SimServer
from tests.fakes import FakeSlack
from tests.processes import sim_server

REFRESH = 30.0
RUNS = 10
RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
HOURS = 6.0
API_KEY = "bench"
# The soak's upstream: a fast market, refreshed every 5 ms, and no rate limit to speak of.
UPSTREAM = (
    "--api-key",
    API_KEY,
    "--refresh",
    "0.005",
    "--speed",
    "1000",
    "--rate-limit",
    "1000000",
)
CHART_EVERY = 10  # soak cycles between two chart requests


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def age_study() -> None:
    """Both schedules on a virtual clock against the simulator's refresh ticks."""
    rng = random.Random(3)
    for name in ("fixed 30 s", "freshness-aware"):
        ages: list[float] = []
        polls = 0
        for _ in range(RUNS):  # each run starts at a random phase of the refresh cycle
            clock = [1_795_000_000.0 + rng.uniform(0, REFRESH)]
            sim = Simulator(SimConfig(seed=1, refresh=REFRESH), clock=_reader(clock))
            model = RefreshModel(interval=REFRESH)
            start = clock[0]
            while clock[0] - start < HOURS * 3600:
                sim.advance()
                polls += 1
                computed = sim.computed_at("BTCUSDT")
                ages.append(clock[0] - computed)
                now = datetime.fromtimestamp(clock[0], tz=UTC)
                fresh = model.observe([datetime.fromtimestamp(computed, tz=UTC)], asked_at=now)
                if name.startswith("fixed"):
                    clock[0] += REFRESH
                else:
                    clock[0] = next_poll(model, now=now, fresh=fresh).timestamp()
        rate = polls / (RUNS * HOURS * 60)
        print(
            f"  {name:<16} median age {statistics.median(ages):5.1f} s, "
            f"p95 {pct(ages, 0.95):5.1f} s, {rate:.2f} requests/min"
        )


def _reader(cell: list[float]) -> Callable[[], float]:
    return lambda: cell[0]


class TimedClient(BackQuantClient):
    """Records when each bundle response arrived (one list for the run: the root builds the
    client)."""

    arrivals: list[float] = []  # noqa: RUF012 - shared on purpose

    async def bundle(self, *args: object, **kw: object) -> BundleSnapshot:
        result = await super().bundle(*args, **kw)  # type: ignore[arg-type]
        self.arrivals.append(time.monotonic())
        return result


async def latency(tmp: Path, source: str = "backquant") -> None:
    rules_dir = tmp / "rules"
    rules_dir.mkdir()
    channels = "\n".join(f"  c{i}: {{slack: '#c{i}'}}" for i in range(10))
    rules = "\n".join(
        f"  - {{id: cross-{i}, symbols: [BTCUSDT], when: {{crosses: hvl}}, notify: [c{i}],"
        " cooldown: 0s}"
        for i in range(10)
    )
    (rules_dir / "r.yaml").write_text(f"channels:\n{channels}\nrules:\n{rules}\n")
    slack = FakeSlack()
    await slack.start()
    # A write every 2 s keeps each channel under Slack's ~1 post/s, so pacing adds nothing.
    sim = Simulator(SimConfig(seed=1, refresh=2.0, walk=False), clock=time.time)
    sim.set_levels("BTCUSDT", hvl=80500.0)
    for step in range(1, 400):  # spot crosses the HVL at every refresh
        sim.at_step(step, _spot_to(81000.0 if step % 2 else 80000.0))
    server = SimServer(sim, api_key="k", rate_limit=1_000_000)
    await server.start()
    settings = load_settings(
        env_file=None,
        api_url=server.url,
        api_key="k",
        symbols=["BTCUSDT"],
        rules=rules_dir,
        poll_interval=1.2,
        database_url=f"sqlite:///{tmp / 'b.db'}",
        slack_bot_token=slack.token,
        slack_api_url=slack.api_url,
        source=source,
        # `both`: the simulator's venues behind BackQuant, cross-checked every 5 s here (a
        # minute in production) so the 30 s run holds several checks.
        deribit_url=server.url,
        bybit_url=server.url,
        okx_url=server.url,
        chain_refresh=1.2,
        cross_check_every=5.0,
    )
    ruleset = load_rules(rules_dir, setting="GEXBOT_RULES")
    TimedClient.arrivals = []
    async with compose(
        settings,
        ruleset,
        Console(file=io.StringIO()),
        runtime=real_runtime(),
        fakes=Fakes(client_type=TimedClient),
    ) as bot:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(30, stop.set)
        await bot.run(stop)
    latencies = []
    for post in slack.posts:
        before = [a for a in TimedClient.arrivals if a <= post.at]
        if before:
            latencies.append((post.at - before[-1]) * 1000)
    print(
        f"  GEXBOT_SOURCE={source}: {len(latencies)} posts: p50 {pct(latencies, 0.5):.1f} ms, "
        f"p99 {pct(latencies, 0.99):.1f} ms"
    )
    await slack.stop()
    await server.stop()


async def soak(tmp: Path, upstream: str) -> None:
    """1,000 real cycles (HTTP poll, evaluate, persist, deliver to the console, a chart for
    the `chart: true` rules, a chart asked for every 10 cycles) against the simulator in its
    own process, so the RSS is the bot's alone; the chart renderer's is reported beside it."""
    quiet = load_settings(
        env_file=None,
        api_url=upstream,
        api_key=API_KEY,
        rules=RULES_DIR,
        database_url=f"sqlite:///{tmp / 'soak.db'}",
        poll_interval=0.01,
    )
    printed = io.StringIO()
    async with compose(
        quiet,
        load_rules(quiet.rules, universe=quiet.symbols, setting="GEXBOT_RULES"),
        Console(file=printed, width=120),
        runtime=real_runtime(),
    ) as bot:
        rss = {}
        charts = 0
        t0 = time.perf_counter()
        for cycle in range(1, 1001):
            await asyncio.sleep(0.006)  # let the simulator refresh
            await bot.poll.once()
            await bot.dispatcher.run_once()
            if cycle % CHART_EVERY == 0:  # as `/levels SYMBOL` in a chat would
                await bot.charts(quiet.symbols[(cycle // CHART_EVERY) % len(quiet.symbols)])
                charts += 1
            if cycle in (200, 1000):
                rss[cycle] = _rss_mb()
        elapsed = time.perf_counter() - t0
        renderer = bot.charts.renderer
        text = printed.getvalue()
        await bot.charts.close()
    print(
        f"  1,000 cycles in {elapsed:.1f} s; bot RSS {rss[200]:.1f} MB at cycle 200, "
        f"{rss[1000]:.1f} MB at cycle 1,000 (growth {rss[1000] - rss[200]:+.1f} MB); "
        f"matplotlib in the bot's process: {'matplotlib' in sys.modules}"
    )
    print(
        f"  chart renderer process: peak RSS {renderer.peak_rss_mb or 0:.1f} MB, "
        f"{renderer.restarts} restart(s); {charts} chart(s) asked for, "
        f"{text.count('[chart:')} sent with alerts ({len(text.splitlines())} console lines)"
    )


def _spot_to(value: float) -> Callable[[Simulator], None]:
    return lambda s: s.set_spot("BTCUSDT", value)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    only_latency = "--latency" in sys.argv[1:]  # part 2 alone, for both sources
    if not only_latency:
        print(
            f"1. data age when evaluated ({REFRESH:.0f} s upstream refresh, {RUNS} runs of "
            f"{HOURS:g} simulated hours from random phases)"
        )
        age_study()
    print("2. detection to delivery (response arrival → fake Slack receives the post)")
    for source in ("backquant", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(latency(Path(tmp), source))
    if only_latency:
        return
    print("3. soak: 1,000 cycles on the repository's rules/ (charts on)")
    with tempfile.TemporaryDirectory() as tmp, sim_server(*UPSTREAM) as url:
        asyncio.run(soak(Path(tmp), url))


if __name__ == "__main__":
    with profile_if_asked():
        main()
