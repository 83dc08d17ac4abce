"""The bot's loops in-process: health and metrics, once --dry-run, hot reload, failures."""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from gexbot.adapters.backquant import RetryPolicy
from gexbot.app import Fakes, compose, real_runtime
from gexbot.cli import main
from gexbot.loops.rules import load_rules
from gexbot.loops.service import Service
from gexbot.settings import Settings, load_settings
from gexbot.sim.market import Fault, FaultKind, Simulator
from gexbot.sim.server import SimServer
from gexbot.store.engine import make_engine
from tests.conftest import threaded_sim

RULES = """
channels: {tty: {terminal: true}}
warnings: {notify: [tty]}
defaults: {notify: tty, cooldown: 0s}
rules:
  - id: above-1
    symbols: [BTCUSDT]
    when: {above: 1}
"""


@pytest.fixture
async def sim_server() -> AsyncIterator[SimServer]:

    sim = Simulator(clock=time.time)
    server = SimServer(sim, api_key="k")
    await server.start()
    yield server
    await server.stop()


def _settings(tmp_path: Path, url: str, **kw: object) -> Settings:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "r.yaml").write_text(RULES)
    return load_settings(
        env_file=None,
        api_url=url,
        api_key="k",
        rules=rules,
        database_url=f"sqlite:///{tmp_path / 'b.db'}",
        poll_interval=1,
        symbols=["BTCUSDT"],
        **kw,
    )


@asynccontextmanager
async def _bot(
    settings: Settings,
    console: Console | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    quiet_cycles: bool = False,
    **fakes: Any,
) -> AsyncIterator[Service]:
    """The service `gexbot run` builds on `settings`, through the same root (no notifier but
    the console, when one is given; a clock of the test's own, when given)."""
    runtime = real_runtime()
    if clock is not None:
        runtime = replace(runtime, now=clock, epoch=lambda: clock().timestamp())
    if console is None:
        fakes.setdefault("notifiers", {})
    rules = load_rules(settings.rules, setting="GEXBOT_RULES")
    async with compose(
        settings,
        rules,
        console,
        runtime=runtime,
        quiet_cycles=quiet_cycles,
        fakes=Fakes(**fakes),
    ) as bot:
        yield bot


async def test_health_and_metrics_follow_the_feed(tmp_path: Path, sim_server: SimServer) -> None:
    settings = _settings(tmp_path, sim_server.url, http_port=0)
    one_try = RetryPolicy(attempts=1)  # the outage below is seen on the first poll
    async with _bot(settings, Console(file=io.StringIO()), retry=one_try) as bot:
        ok, body = bot.health()
        assert not ok
        assert body["reason"] == "no successful poll yet"
        await bot.poll.once()
        ok, body = bot.health()
        assert ok
        assert body["status"] == "ok"
        from gexbot.loops.health import HealthServer

        server = HealthServer(bot.metrics, bot.health)
        url = await server.start("127.0.0.1", 0)
        try:
            async with httpx.AsyncClient() as http:
                health = await http.get(f"{url}/healthz")
                metrics = (await http.get(f"{url}/metrics")).text
        finally:
            await server.stop()
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        assert 'gexbot_polls_total{outcome="ok"} 1.0' in metrics
        assert 'gexbot_symbols{status="ok"} 1.0' in metrics
        assert "gexbot_cycle_duration_seconds_bucket" in metrics
        assert "gexbot_rate_limit_remaining" in metrics
        # The feed fails for longer than 3 intervals: unhealthy, with the reason.
        sim_server.sim.inject(Fault(FaultKind.HTTP_ERROR, status=503, count=100))
        bot.poll.state.last_success = bot.poll.state.last_success.replace(year=2000)  # type: ignore[union-attr]
        await bot.poll.once()
        ok, body = bot.health()
        assert not ok
        assert "feed down" in str(body["reason"])
        assert "503" in str(body["reason"])


async def test_a_failing_cycle_is_logged_and_the_next_one_runs(
    tmp_path: Path, sim_server: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path, sim_server.url)
    async with _bot(settings, Console(file=io.StringIO())) as bot:
        calls = 0
        real = bot.poll.once

        async def flaky(*, dry_run: bool = False) -> object:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("a bug in one cycle")
            return await real(dry_run=dry_run)

        bot.poll.once = flaky  # type: ignore[method-assign,assignment]
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(2.5, stop.set)
        await bot.poll.run(stop)
    assert calls >= 2
    assert "cycle failed; the next one runs as scheduled" in caplog.text
    assert bot.metrics.cycle_errors._value.get() == 1


async def test_hot_reload_swaps_valid_rules_and_refuses_broken_ones(
    tmp_path: Path, sim_server: SimServer
) -> None:
    settings = _settings(tmp_path, sim_server.url)
    out = io.StringIO()
    async with _bot(settings, Console(file=out, width=200)) as bot:
        (settings.rules / "r.yaml").write_text(RULES.replace("above: 1", "below: 1"))
        bot.reload.apply()
        assert bot.pipeline.rules.rules[0].condition.kind.value == "below"
        (settings.rules / "r.yaml").write_text(RULES.replace("above: 1", "above: hvll"))
        bot.reload.apply()
        assert bot.pipeline.rules.rules[0].condition.kind.value == "below"  # kept
        await bot.dispatcher.run_once()
    assert "New rule files refused, the previous rules stay active" in out.getvalue()
    assert "unknown level `hvll`" in out.getvalue()


def test_once_dry_run_prints_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with threaded_sim() as url:
        _dry_run_checks(tmp_path, monkeypatch, capsys, url)


def _dry_run_checks(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
) -> None:
    for name in list(os.environ):
        if name.startswith("GEXBOT_"):
            monkeypatch.delenv(name)
    settings = _settings(tmp_path, url)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GEXBOT_API_URL", url)
    monkeypatch.setenv("GEXBOT_API_KEY", "k")
    monkeypatch.setenv("GEXBOT_RULES", str(settings.rules))
    monkeypatch.setenv("GEXBOT_SYMBOLS", "BTCUSDT,DOGEUSDT")
    monkeypatch.setenv("GEXBOT_DATABASE_URL", settings.database_url)
    assert main(["once", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would send: 🟠 DOGEUSDT is not a symbol BackQuant serves" in out
    from sqlalchemy import func, select

    from gexbot.store.tables import alert_state, outbox

    engine = make_engine(settings.database_url)
    with engine.connect() as conn:  # the dry run wrote nothing
        assert conn.execute(select(func.count()).select_from(outbox)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(alert_state)).scalar() == 0
    monkeypatch.setenv("GEXBOT_SYMBOLS", "BTCUSDT")
    assert main(["once"]) == 0  # first sight: baselines
    assert main(["once", "--dry-run"]) == 0
    assert "dry run: nothing would be sent" in capsys.readouterr().out
    engine.dispose()


class _Standby:
    """A replica that does not lead (the Leadership protocol, without a database)."""

    instance = "r2"

    def is_leader(self) -> bool:
        return False

    def describe(self) -> dict[str, object]:
        return {
            "role": "standby",
            "instance": "r2",
            "leader": "r1",
            "term": 7,
            "database_error": None,
        }

    def fence(self, conn: object) -> None:
        raise AssertionError("a standby never commits a cycle")

    async def before_poll(self) -> bool:
        raise AssertionError("a standby never polls")

    def take_over(self) -> None:
        return None

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()

    async def try_lead(self) -> bool:
        return False

    async def release(self) -> None:
        pass


async def test_a_standby_is_healthy_without_polling_and_says_who_leads(
    tmp_path: Path, sim_server: SimServer
) -> None:
    settings = _settings(tmp_path, sim_server.url, http_port=0)
    async with _bot(settings, leadership=_Standby()) as bot:
        stop = asyncio.Event()
        task = asyncio.create_task(bot.poll.run(stop))
        await asyncio.sleep(0.5)
        stop.set()
        await task
        ok, body = bot.health()
    assert ok
    assert body["reason"] == "standby; leader is r1"
    assert body["role"] == "standby"
    assert body["leader"] == "r1"
    assert bot.poll.state.cycles == 0
    assert sim_server.request_log == []
    assert bot.health.status()["role"] == "standby"


async def test_an_alert_chart_for_several_destinations_is_fetched_once(
    tmp_path: Path, sim_server: SimServer
) -> None:
    async with _bot(_settings(tmp_path, sim_server.url)) as bot:
        first = await bot.charts("BTCUSDT")
        second = await bot.charts("BTCUSDT")
    assert first is not None
    assert first.startswith(b"\x89PNG")
    assert second is first
    assert [path for path, _ in sim_server.request_log] == ["/v2/gex/levels"]


async def test_quiet_cycles_log_only_events_and_a_heartbeat_a_minute(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from datetime import UTC, datetime

    from gexbot.sim.market import SimConfig
    from tests.conftest import START, Clock

    clock = Clock(START)
    sim = Simulator(SimConfig(seed=3, refresh=1.0), clock=clock)
    server = SimServer(sim, api_key="k")
    await server.start()
    caplog.set_level("INFO", logger="gexbot")
    try:
        settings = _settings(tmp_path, server.url)
        async with _bot(
            settings,
            quiet_cycles=True,
            clock=lambda: datetime.fromtimestamp(clock(), tz=UTC),
        ) as bot:
            for n in range(40):  # 80 s of polling every 2 s; one poll fails (not quiet)
                if n == 35:
                    sim.inject(Fault(status=400))
                await bot.poll.once()
                clock.advance(2.0)
    finally:
        await server.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "gexbot"]
    cycles = [line.rsplit(",", 1)[0] for line in lines if line.startswith("cycle ")]
    assert cycles == [
        "cycle 36: poll failed (validation), 0/1 symbols ok, 0 alert(s), 0 warning(s)"
    ]
    beats = [line for line in lines if line.startswith("still polling")]
    assert len(beats) == 1
    assert beats[0].startswith("still polling: 30 quiet cycle(s)")
