"""An upstream that answers like an attacker: every header a client reads, every string it may
print, through the real client over HTTP and through `gexbot levels`. The only exception the
client may raise is its own `FetchError`, and no control character reaches a terminal."""

from __future__ import annotations

import asyncio
import copy
import json
import random
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gexbot.adapters.backquant import BackQuantClient, FetchError, RetryPolicy, build_http_client
from gexbot.cli import EXIT_FAILED, EXIT_OK, main
from gexbot.core.market.snapshot import BundleSnapshot, SymbolStatus
from gexbot.core.present.format import printable
from tests.conftest import EXAMPLES

CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
MULTI = json.loads((EXAMPLES / "multi-full.json").read_text())
NUMERIC_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-Quota-Limit",
    "X-Quota-Remaining",
    "Retry-After",
)
#: What a broken or hostile server has been seen to send in a number's place.
_SEEN = ("inf", "-inf", "+inf", "Infinity", "nan", "NaN", "1e400", "-1e400", "1e20", "-1e20")
_ODD = ("-1", "", " ", "abc", "0x10", "1_000", "9" * 400, "1.5", "١٢", "\x1b[2J", "5; drop")
HOSTILE_NUMBERS = (
    st.sampled_from([*_SEEN, *_ODD, "1e-400"])
    | st.text(max_size=12)
    | st.floats().map(repr)
    | st.integers().map(str)
)
HOSTILE_TEXT = st.sampled_from(
    ["\x1b[2J\x1b[H", "\x1b]0;owned\x07", "a\rb", "\u202eevil", "bell\x07", "\x9b31m", "ok"]
) | st.text(max_size=40)


@dataclass
class Answer:
    """What the server says next."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = field(default_factory=lambda: copy.deepcopy(MULTI))


class HostileServer:
    """An HTTP server on its own thread that answers every request with `answer`."""

    def __init__(self) -> None:
        self.answer = Answer()
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None

    async def _handle(self, _request: web.Request) -> web.Response:
        a = self.answer
        text = a.body if isinstance(a.body, str) else json.dumps(a.body)
        return web.Response(
            status=a.status, text=text, content_type="application/json", headers=a.headers
        )

    def __enter__(self) -> HostileServer:
        ready = threading.Event()

        async def start() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            port = self._runner.addresses[0][1]
            self.url = f"http://127.0.0.1:{port}"

        def serve() -> None:
            self._loop.run_until_complete(start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(timeout=10)
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


def _fetch(url: str) -> BundleSnapshot | FetchError:
    async def go() -> BundleSnapshot | FetchError:
        async with build_http_client(url, "k", timeout=5.0) as http:
            client = BackQuantClient(
                http,
                api_key="k",
                retry=RetryPolicy(attempts=1),
                rng=random.Random(0),
                wall_clock=lambda: 1_795_000_000.0,
            )
            try:
                return await client.bundle(["BTCUSDT", "ETHUSDT"])
            except FetchError as exc:
                return exc

    return asyncio.run(go())


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    status=st.sampled_from([200, 429, 503]),
    headers=st.dictionaries(st.sampled_from(NUMERIC_HEADERS), HOSTILE_NUMBERS, min_size=1),
)
def test_no_numeric_header_breaks_the_client(
    hostile: HostileServer, status: int, headers: dict[str, str]
) -> None:
    # Header values must be latin-1 and single-line on the wire; anything else the server
    # library refuses to send, so it cannot reach the client either.
    headers = {k: v for k, v in headers.items() if _sendable(v)}
    body = copy.deepcopy(MULTI) if status == 200 else _error_body("RATE_LIMIT_EXCEEDED", "slow")
    hostile.answer = Answer(status=status, headers=headers, body=body)
    result = _fetch(hostile.url)
    if status == 200:
        assert isinstance(result, BundleSnapshot), result
    else:
        assert isinstance(result, FetchError)
        assert result.retry_after is None or 0 <= result.retry_after < float("inf")


def _sendable(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    # aiohttp (like any HTTP/1.1 server) refuses control characters in a header value.
    return not any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in value)


def _error_body(code: str, message: str) -> dict[str, Any]:
    return {
        "success": False,
        "error": {"code": code, "message": message},
        "meta": {"request_id": "r-1", "timestamp": "2026-11-18T00:00:00Z"},
    }


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    status=st.sampled_from([400, 401, 403, 404, 429, 500, 502, 200]),
    message=HOSTILE_TEXT,
    code=HOSTILE_TEXT,
    request_id=HOSTILE_TEXT.filter(_sendable),
)
def test_no_upstream_string_reaches_an_error_with_a_control_character(
    hostile: HostileServer, status: int, message: str, code: str, request_id: str
) -> None:
    body = _error_body(code, message)
    body["meta"]["request_id"] = request_id
    hostile.answer = Answer(status=status, headers={"X-Request-ID": request_id}, body=body)
    result = _fetch(hostile.url)
    assert isinstance(result, FetchError)  # success: false, whatever the status
    assert not CONTROL.search(str(result)), repr(str(result))
    assert result.request_id is None or not CONTROL.search(result.request_id)


def test_an_echoed_name_that_is_not_a_symbol_is_not_made_one(hostile: HostileServer) -> None:
    body = copy.deepcopy(MULTI)
    body["data"]["requested"] = [*body["data"]["requested"], "\x1b[2J", "X\x07"]
    hostile.answer = Answer(body=body)
    result = _fetch(hostile.url)
    assert isinstance(result, BundleSnapshot)
    assert not any(CONTROL.search(sym) for sym in result.symbols)


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (200, {"X-RateLimit-Reset": "inf", "X-Quota-Remaining": "1e400"}, MULTI),
        (429, {"X-RateLimit-Reset": "1e400", "Retry-After": "inf"}, _error_body("X", "slow")),
        (500, {}, _error_body("\x1b]0;owned\x07", "\x1b[2J\x1b[Hwiped")),
    ],
    ids=["200-infinite-headers", "429-infinite-headers", "500-escape-sequences"],
)
def test_gexbot_levels_prints_no_control_character_and_no_traceback(
    hostile: HostileServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    status: int,
    headers: dict[str, str],
    body: Any,
) -> None:
    hostile.answer = Answer(status=status, headers=headers, body=copy.deepcopy(body))
    monkeypatch.setenv("GEXBOT_API_URL", hostile.url)
    monkeypatch.setenv("GEXBOT_API_KEY", "k")
    monkeypatch.setenv("GEXBOT_SYMBOLS", "BTCUSDT,ETHUSDT")
    code = main(["levels"])
    out = capsys.readouterr()
    assert code == (EXIT_OK if status == 200 else EXIT_FAILED), out.err
    assert "Traceback" not in out.err
    assert not CONTROL.search(out.out + out.err), repr((out.out + out.err)[-400:])


def test_printable_shows_every_control_character_as_an_escape() -> None:
    assert printable("\x1b[2J") == "\\x1b[2J"
    assert printable("a\u202eb") == "a\\u202eb"
    assert printable("fine text, ünïcode ✓") == "fine text, ünïcode ✓"
    assert printable("x" * 10, limit=5) == "xxxx…"


def test_data_from_the_future_is_stale_with_one_warning(
    hostile: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    body = copy.deepcopy(MULTI)
    for entry in body["data"]["results"].values():
        entry["computed_at"] = "9999-12-31T23:59:59Z"
    hostile.answer = Answer(body=body)

    async def three_polls() -> list[BundleSnapshot]:
        async with build_http_client(hostile.url, "k", timeout=5.0) as http:
            client = BackQuantClient(
                http,
                api_key="k",
                retry=RetryPolicy(attempts=1),
                rng=random.Random(0),
                wall_clock=lambda: 1_795_000_000.0,
            )
            return [await client.bundle(["BTCUSDT"]) for _ in range(3)]

    caplog.set_level("WARNING", logger="gexbot")
    polls = asyncio.run(three_polls())
    assert {p.symbols["BTCUSDT"].status for p in polls} == {SymbolStatus.STALE}
    assert caplog.text.count("BTCUSDT data is dated 9999-12-31") == 1  # not once per poll
