"""Shared fixtures: a controllable clock, the simulator over real HTTP, and a client."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gexbot.adapters.backquant import BackQuantClient, RetryPolicy, build_http_client
from gexbot.sim.market import SimConfig, Simulator
from gexbot.sim.server import SimServer

#: BackQuant's published OpenAPI document and the example payloads (copied from the upstream
#: docs, see tests/upstream/SOURCE.md), kept in the repo so tests run from a lone clone.
UPSTREAM = Path(__file__).resolve().parent / "upstream"
EXAMPLES = UPSTREAM / "examples"
OPENAPI = UPSTREAM / "openapi-v2.json"

START = 1_795_000_000.0  # 2026-11-18T..., a fixed instant so simulated markets repeat


class Clock:
    """A settable epoch clock for the simulator and the client."""

    def __init__(self, t: float = START) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Sleeps:
    """An instant `sleep` that records what it was asked to wait."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB 22 warns on every RetryAfter access unless this opt-in is set (notes §1.5).
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> Simulator:
    return Simulator(SimConfig(seed=3, refresh=30.0), clock=clock)


@pytest.fixture
async def server(sim: Simulator) -> AsyncIterator[SimServer]:
    srv = SimServer(sim, api_key="test-key-123456")
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def client(server: SimServer, clock: Clock, sleeps: Sleeps) -> AsyncIterator[BackQuantClient]:
    async with build_http_client(server.url, server.api_key, timeout=5.0) as http:
        yield BackQuantClient(
            http,
            api_key=server.api_key,
            retry=RetryPolicy(attempts=3, base_delay=1.0, max_delay=8.0, max_wait=60.0),
            rng=random.Random(1),
            sleep=sleeps,
            wall_clock=clock,
        )
