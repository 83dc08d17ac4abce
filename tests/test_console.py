"""The web console: its view (pure), the store's rows, and access over real HTTP."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from sqlalchemy import Engine, insert, update

from gexbot.core.alerts.audience import Mute, Scope
from gexbot.core.alerts.states import AlertState, AlertStatus
from gexbot.core.market.snapshot import BundleSnapshot, SymbolSnapshot
from gexbot.core.personal.grammar import parse_alert
from gexbot.core.present.console_view import ConsoleView, delivery_what, symbol_cards, view_json
from gexbot.loops.health import HealthServer, Metrics
from gexbot.loops.waits import Changes
from gexbot.store.console import console_rows
from gexbot.store.ops import add_mute
from gexbot.store.outbox import enqueue
from gexbot.store.personal import create_alert
from gexbot.store.states import save_statuses
from gexbot.store.tables import outbox
from gexbot.web.console import COOKIE, WebConsole
from tests.rulekit import T0, alert_event, bundle, snapshot

TOKEN = "console-token-4f2a"


# -- the view, pure ---------------------------------------------------------------------------


def test_a_card_per_symbol_with_each_level_and_its_distance() -> None:
    (card,) = symbol_cards(bundle(snapshot(101, hvl=100, call_resistance=105)), T0)
    assert card.symbol == "BTCUSDT"
    assert card.spot == "101"
    assert card.regime == "above HVL: dealers damp moves"
    rows = {r.label: r for r in card.levels}
    assert rows["HVL"].distance == "-0.99%"
    assert not rows["HVL"].above
    assert rows["Call resistance"].above
    assert card.chart_key == T0.isoformat()
    assert symbol_cards(None, T0) == ()


def test_a_delivery_reads_in_a_few_words() -> None:
    assert delivery_what({"rule_id": "hvl-cross", "symbol": "BTCUSDT", "reason": "fired"}) == (
        "hvl-cross BTCUSDT fired"
    )
    assert delivery_what({"rule_id": "warning:feed", "message": "feed down"}) == "feed down"


# -- the store's rows -------------------------------------------------------------------------


def test_the_rows_split_rules_from_warnings_and_show_why_a_delivery_died(db: Engine) -> None:
    firing = AlertStatus(state=AlertState.FIRING, since=T0)
    with db.begin() as conn:
        save_statuses(
            conn,
            {
                ("hvl-above", "BTCUSDT"): firing,
                ("warning:stale", "ETHUSDT"): firing,
                ("quiet", "BTCUSDT"): AlertStatus(),
            },
        )
        enqueue(
            conn, [(alert_event(key="a|BTCUSDT", seq=1, rule_id="a"), ["desk", "hook"])], now=T0
        )
        dead_id = max(r.id for r in conn.execute(outbox.select()))
        conn.execute(
            update(outbox)
            .where(outbox.c.id == dead_id)
            .values(state="dead", last_error="webhook hook: HTTP 400")
        )
        add_mute(conn, Mute(Scope.RULE, "a", T0 + timedelta(hours=1)), by="u", now=T0)
        for chat in ("1", "1", "2"):
            create_alert(
                conn,
                request=parse_alert("btc crosses hvl"),
                platform="telegram",
                chat_id=chat,
                owner="u",
                now=T0,
                limit=10,
            )
    with db.connect() as conn:
        rows = console_rows(conn, now=T0)
    assert [(f.rule_id, f.symbol) for f in rows.firing] == [("hvl-above", "BTCUSDT")]
    assert [(w.rule_id, w.symbol) for w in rows.warnings] == [("warning:stale", "ETHUSDT")]
    assert (rows.waiting, rows.dead_total) == (1, 1)
    (dead,) = rows.dead
    assert dead.error == "webhook hook: HTTP 400"
    assert dead.what == "a BTCUSDT fired"
    assert [d.state for d in rows.recent] == ["dead", "pending"]
    assert [(m.scope, m.target) for m in rows.mutes] == [("rule", "a")]
    assert [(c.chat, c.alerts, c.paused) for c in rows.personal] == [
        ("telegram:1", 2, 0),
        ("telegram:2", 1, 0),
    ]


# -- over HTTP --------------------------------------------------------------------------------


def _outside_address() -> str | None:
    """An address of this machine that is not loopback (None: it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks a route
            address: str = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


ROLE = {"role": "leader", "instance": "test-1", "leader": "test-1"}


async def _png(_snap: SymbolSnapshot) -> bytes:
    return b"\x89PNG-console"


def _console(engine: Engine, latest: Callable[[], BundleSnapshot | None], **kw: Any) -> WebConsole:
    """The console over `engine` and `latest`; keyword arguments replace the defaults."""
    args: dict[str, Any] = {
        "role": lambda: ROLE,
        "chart": _png,
        "changes": Changes(),
        "clock": lambda: T0,
        "token": None,
    }
    return WebConsole(engine=engine, latest=latest, **{**args, **kw})


@asynccontextmanager
async def _listening(console: WebConsole, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """The console on the health server, as `gexbot run` serves it; yields the base URL."""
    health = HealthServer(Metrics(), lambda: (True, {"status": "ok"}), routes=[console.add_routes])
    runner = web.AppRunner(health.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, 0).start()
    try:
        yield f"http://{host}:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


Serve = Callable[..., Awaitable[str]]


@pytest.fixture
async def serve(db: Engine) -> AsyncIterator[Serve]:
    latest = bundle(snapshot(101, hvl=100))
    async with AsyncExitStack() as servers:

        async def start(*, token: str | None, host: str = "127.0.0.1") -> str:
            console = _console(db, lambda: latest, token=token)
            return await servers.enter_async_context(_listening(console, host))

        yield start


async def test_without_a_token_loopback_is_served(serve: Serve) -> None:
    url = await serve(token=None)
    async with httpx.AsyncClient() as http:
        page = await http.get(f"{url}/")
        data = await http.get(f"{url}/console/data.json")
        chart = await http.get(f"{url}/console/chart/btcusdt.png")
        missing = await http.get(f"{url}/console/chart/ETHUSDT.png")
    assert page.status_code == 200
    assert "BTCUSDT" in page.text
    assert "above HVL: dealers damp moves" in page.text
    assert data.json()["symbols"][0]["spot"] == "101"
    assert chart.content == b"\x89PNG-console"
    assert missing.status_code == 404


async def test_without_a_token_other_addresses_get_403(serve: Serve) -> None:
    address = _outside_address()
    if address is None:
        pytest.skip("this machine has no address but loopback to come from")
    url = await serve(token=None, host=address)
    async with httpx.AsyncClient() as http:
        page = await http.get(f"{url}/")
        data = await http.get(f"{url}/console/data.json")
        health = await http.get(f"{url}/healthz")
    assert page.status_code == 403
    assert "GEXBOT_HTTP_TOKEN" in page.text
    assert data.status_code == 403
    assert health.status_code == 200  # the health endpoints are not the console's


async def test_with_a_token_every_console_request_needs_it(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = await serve(token=TOKEN)
    async with httpx.AsyncClient() as http:
        bare = await http.get(f"{url}/")
        wrong = await http.get(f"{url}/", headers={"Authorization": "Bearer not-it"})
        right = await http.get(f"{url}/", headers={"Authorization": f"Bearer {TOKEN}"})
        data = await http.get(f"{url}/console/data.json")
        events = await http.get(f"{url}/console/events")
        health = await http.get(f"{url}/healthz")
        metrics = await http.get(f"{url}/metrics")
    assert bare.status_code == 401
    assert 'name="token"' in bare.text  # the login form
    assert "not right" not in bare.text
    assert wrong.status_code == 401
    assert "not right" in wrong.text
    assert right.status_code == 200
    assert "BTCUSDT" in right.text
    assert data.status_code == 401
    assert events.status_code == 401
    assert (health.status_code, metrics.status_code) == (200, 200)
    assert "not-it" not in caplog.text
    assert TOKEN not in caplog.text


async def test_the_login_form_sets_an_httponly_strict_cookie_not_the_token(serve: Serve) -> None:
    url = await serve(token=TOKEN)
    async with httpx.AsyncClient() as http:
        refused = await http.post(f"{url}/console/login", data={"token": "guess"})
        assert refused.status_code == 401
        assert COOKIE not in refused.cookies
        ok = await http.post(f"{url}/console/login", data={"token": TOKEN})
        assert ok.status_code == 303
        cookie = ok.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert TOKEN not in cookie
        page = await http.get(f"{url}/")  # the client keeps the cookie
    async with httpx.AsyncClient(cookies={COOKIE: TOKEN}) as forger:  # the token as a cookie
        forged = await forger.get(f"{url}/")
    assert page.status_code == 200
    assert "BTCUSDT" in page.text
    assert forged.status_code == 401


async def test_live_updates_push_the_sections_when_something_changed(db: Engine) -> None:
    changes = Changes()
    state: dict[str, BundleSnapshot] = {"latest": bundle(snapshot(101, hvl=100))}
    console = _console(
        db,
        lambda: state["latest"],
        changes=changes,
        refresh_anyway=30,  # only a change can bring the second event in time
    )
    async with _listening(console) as base:
        url = f"{base}/console/events"
        async with httpx.AsyncClient(timeout=10) as http, http.stream("GET", url) as stream:
            events = _events(stream.aiter_lines())
            first = await anext(events)
            assert "101" in first["symbols"]
            state["latest"] = bundle(snapshot(99, hvl=100))
            changes.bump()  # a cycle ended
            second = await anext(events)
            assert "below HVL" in second["symbols"]


async def _events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    async for line in lines:
        if line.startswith("data: "):
            yield json.loads(line.removeprefix("data: "))


def test_a_stale_row_keeps_its_reason_in_the_json(db: Engine) -> None:
    with db.begin() as conn:
        conn.execute(
            insert(outbox).values(
                alert_key="k",
                seq=1,
                channel="desk",
                payload={"rule_id": "r", "symbol": "BTCUSDT", "reason": "fired"},
                state="dead",
                attempts=8,
                due_at=T0,
                created_at=T0,
                last_error="gave up after 8 attempts",
            )
        )
    with db.connect() as conn:
        rows = console_rows(conn, now=T0)
    data = view_json(ConsoleView(T0, (), rows))
    assert data["dead"][0]["error"] == "gave up after 8 attempts"  # type: ignore[index]
    assert data["outbox"] == {"waiting": 0, "dead": 1}


class _NoUpstream:
    """A BackQuant client that must not be asked: the console costs no upstream request."""

    async def levels(self, *_args: object, **_kw: object) -> None:
        raise AssertionError("the console made an upstream request")


async def test_the_console_chart_comes_from_the_held_snapshot_once_per_refresh(db: Engine) -> None:
    from gexbot.charts.cache import ChartCache
    from gexbot.charts.renderer import ChartRenderer

    renderer = ChartRenderer()
    charts = ChartCache(
        _NoUpstream(),  # type: ignore[arg-type]
        db,
        renderer,
        ttl=15,
        clock=lambda: T0,
        monotonic=time.monotonic,
    )
    try:
        snap = snapshot(101, hvl=100, call_resistance=105)
        first = await charts.of_snapshot(snap)
        again = await charts.of_snapshot(snap)
        later = await charts.of_snapshot(snapshot(102, hvl=100, at=T0 + timedelta(seconds=30)))
    finally:
        await renderer.close()
    assert first.startswith(b"\x89PNG")
    assert again is first  # the same refresh: not drawn again
    assert later != first


async def test_with_the_database_down_the_page_says_so_and_still_answers() -> None:
    from sqlalchemy import create_engine

    down = create_engine("postgresql+psycopg://postgres@127.0.0.1:9/none")  # nothing listens
    try:
        async with (
            _listening(_console(down, lambda: None)) as url,
            httpx.AsyncClient(timeout=20) as http,
        ):
            page = await http.get(f"{url}/")
    finally:
        down.dispose()
    assert page.status_code == 200
    assert "Incomplete: the database cannot be reached (OperationalError)" in page.text


async def test_open_pages_share_one_read_per_change(db: Engine) -> None:
    reads: list[int] = []

    def latest() -> BundleSnapshot:
        reads.append(1)
        return bundle(snapshot(101, hvl=100))

    changes = Changes()
    console = _console(db, latest, changes=changes, refresh_anyway=30)
    async with _listening(console) as base, httpx.AsyncClient(timeout=10) as http:
        url = f"{base}/console/events"
        async with http.stream("GET", url) as one, http.stream("GET", url) as two:
            first, second = _events(one.aiter_lines()), _events(two.aiter_lines())
            await anext(first)
            await anext(second)
            before = len(reads)
            changes.bump()
            await anext(first)
            await anext(second)
    assert len(reads) - before == 1  # two pages, one change: one read of the store
