"""Shared fixtures: a controllable clock, the simulator over real HTTP, and a client."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gexbot.adapters.backquant import BackQuantClient, RetryPolicy, build_http_client
from gexbot.sim.market import SimConfig, Simulator
from gexbot.sim.server import SimServer
from tests.databases import pg_schema

#: BackQuant's published OpenAPI document and the example payloads (copied from the upstream
#: docs, see tests/upstream/SOURCE.md), kept in the repo so tests run from a lone clone.
UPSTREAM = Path(__file__).resolve().parent / "upstream"
EXAMPLES = UPSTREAM / "examples"
OPENAPI = Path(__file__).parent.parent / "gexbot" / "sim" / "openapi-v2.json"

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


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    # `main([...])` run in-process configures logging: it points the root handler at that test's
    # captured stderr (closed afterwards) and quiets `gexbot` to WARNING. Undo both, so a later
    # test's caplog sees INFO records and no handler writes to a closed stream.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))


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


# -- databases ---------------------------------------------------------------------------------

PG_URL = os.environ.get("GEXBOT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_reason() -> str | None:
    """None when the test PostgreSQL answers, else why not."""
    try:
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(PG_URL)
        with psycopg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            dbname=url.database,
            password=url.password,
            connect_timeout=3,
        ):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means "skip with the reason"
        return f"PostgreSQL not reachable at {PG_URL} ({type(exc).__name__}: {exc})"


@pytest.fixture(scope="session")
def pg_unavailable() -> str | None:
    return _pg_reason()


@contextmanager
def fresh_database(kind: str, tmp_path: Path, skip_reason: str | None) -> Iterator[Engine]:
    """An empty database of `kind` ("sqlite" or "postgresql"), dropped afterwards.

    PostgreSQL gets a schema of its own per test, selected through `search_path`.
    """
    from gexbot.store.engine import make_engine

    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'gexbot.db'}")
        try:
            yield engine
        finally:
            engine.dispose()
        return
    if skip_reason:
        pytest.skip(skip_reason)
    with pg_schema(PG_URL, prefix="gx") as engine:
        yield engine


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(
    request: pytest.FixtureRequest, tmp_path: Path, pg_unavailable: str | None
) -> Iterator[Engine]:
    with fresh_database(request.param, tmp_path, pg_unavailable) as engine:
        yield engine


@pytest.fixture
def db(empty_db: Engine) -> Engine:
    """A migrated database, on SQLite and on PostgreSQL."""
    from gexbot.store.engine import migrate

    migrate(empty_db)
    return empty_db


@contextmanager
def threaded_sim(api_key: str = "k") -> Iterator[str]:
    """The simulator on its own thread and loop, for tests that call the sync CLI `main()`."""
    import time

    with threaded_server(Simulator(clock=time.time), api_key=api_key) as server:
        yield server.url


@contextmanager
def threaded_server(sim: Simulator, *, api_key: str = "k") -> Iterator[SimServer]:
    """A simulator server for `sim` on its own thread and event loop."""
    import asyncio
    import threading

    server = SimServer(sim, api_key=api_key)
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait()
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
