"""The BackQuant client over real HTTP against the simulator on 127.0.0.1 (httpx not mocked)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from gexbot.adapters.backquant import (
    BackQuantClient,
    FetchError,
    RetryPolicy,
    build_http_client,
)
from gexbot.core.market.poll_failure import FetchErrorKind
from gexbot.core.market.snapshot import Level, SymbolStatus
from gexbot.sim.market import Fault, FaultKind, Simulator
from gexbot.sim.server import SimServer
from tests.conftest import Clock, Sleeps

ALL = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "HYPEUSDT"]


async def test_bundle_serves_the_universe_in_one_request(
    client: BackQuantClient, server: SimServer
) -> None:
    bundle = await client.bundle(ALL, include=["ranked", "expected_move"])
    assert list(bundle.symbols) == ALL
    assert all(s.status is SymbolStatus.OK for s in bundle.symbols.values())
    assert [p for p, _ in server.request_log] == ["/v2/multi/gex/levels"]
    btc = bundle.symbols["BTCUSDT"]
    assert btc.spot is not None
    assert btc.level(Level.HVL) is not None
    assert btc.level(Level.EM_UPPER_1SD) is not None
    assert btc.ranked_all
    assert bundle.request_ids
    assert bundle.request_ids[0].startswith("req_")


async def test_only_multi_includes_are_requested(
    client: BackQuantClient, server: SimServer
) -> None:
    await client.bundle(["BTCUSDT"], include=["candles", "max_pain", "spot", "zones"])
    _, query = server.request_log[-1]
    assert query["include"] == "max_pain,zones"


async def test_missing_and_invalid_symbols_do_not_stop_the_others(
    client: BackQuantClient, sim: Simulator
) -> None:
    sim.set_missing("HYPEUSDT")
    bundle = await client.bundle(["BTCUSDT", "HYPEUSDT", "BTCUSD"])
    statuses = {s: snap.status for s, snap in bundle.symbols.items()}
    assert statuses == {
        "BTCUSDT": SymbolStatus.OK,
        "HYPEUSDT": SymbolStatus.MISSING,
        "BTCUSD": SymbolStatus.INVALID,
    }


async def test_more_than_eight_symbols_take_two_requests_merged_in_order(
    client: BackQuantClient, server: SimServer
) -> None:
    fakes = [f"X{i}USDT" for i in range(6)]
    wanted = [*ALL, *fakes]  # 10 symbols
    bundle = await client.bundle(wanted)
    sent = [q["symbols"].split(",") for p, q in server.request_log]
    assert sent == [wanted[:8], wanted[8:]]
    assert list(bundle.symbols) == wanted
    assert bundle.symbols["X5USDT"].status is SymbolStatus.INVALID
    assert len(bundle.request_ids) == 2


async def test_duplicates_are_removed_keeping_caller_order(
    client: BackQuantClient, server: SimServer
) -> None:
    bundle = await client.bundle(["ETHUSDT", "BTCUSDT", "ETHUSDT"])
    assert list(bundle.symbols) == ["ETHUSDT", "BTCUSDT"]
    assert server.request_log[-1][1]["symbols"] == "ETHUSDT,BTCUSDT"


async def test_single_symbol_levels_carry_spot_block_and_candles(
    client: BackQuantClient,
) -> None:
    snap = await client.levels("SOLUSDT", include=["spot", "candles", "max_pain"])
    assert snap.status is SymbolStatus.OK
    assert snap.spot is not None
    assert snap.perps_price is not None
    assert snap.candles
    assert snap.candles[-1].high >= snap.candles[-1].low
    assert snap.computed_at is not None


async def test_stress_history_returns_columns(client: BackQuantClient) -> None:
    history = await client.stress_history("ETHUSDT", days=2)
    assert len(history) >= 2 * 288 - 1  # 5-minute resolution
    assert history.times[0] < history.times[-1]
    assert all(spot is not None for spot in history.spot)
    assert len(history.hvl) == len(history.put_wall) == len(history)


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (401, None, FetchErrorKind.AUTH),
        (403, None, FetchErrorKind.FORBIDDEN),
        (404, None, FetchErrorKind.NOT_FOUND),
        (400, None, FetchErrorKind.VALIDATION),
        (422, None, FetchErrorKind.VALIDATION),
    ],
)
async def test_permanent_errors_map_by_status_and_are_not_retried(
    client: BackQuantClient,
    sim: Simulator,
    server: SimServer,
    sleeps: Sleeps,
    status: int,
    code: str | None,
    kind: FetchErrorKind,
) -> None:
    sim.inject(Fault(FaultKind.HTTP_ERROR, status=status, code=code, count=5))
    with pytest.raises(FetchError) as info:
        await client.bundle(["BTCUSDT"])
    assert info.value.kind is kind
    assert info.value.status == status
    assert not info.value.retryable
    assert len(server.request_log) == 1
    assert sleeps.calls == []


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retried_with_backoff_then_succeed(
    client: BackQuantClient, sim: Simulator, server: SimServer, sleeps: Sleeps, status: int
) -> None:
    sim.inject(Fault(FaultKind.HTTP_ERROR, status=status, count=2))
    bundle = await client.bundle(["BTCUSDT"])
    assert bundle.symbols["BTCUSDT"].status is SymbolStatus.OK
    assert len(server.request_log) == 3
    # Full jitter below a doubling ceiling: (0.5..1] then (1..2].
    assert 0.5 <= sleeps.calls[0] <= 1.0
    assert 1.0 <= sleeps.calls[1] <= 2.0


async def test_retries_are_bounded(
    client: BackQuantClient, sim: Simulator, server: SimServer
) -> None:
    sim.inject(Fault(FaultKind.HTTP_ERROR, status=503, count=10))
    with pytest.raises(FetchError) as info:
        await client.bundle(["BTCUSDT"])
    assert info.value.kind is FetchErrorKind.TRANSIENT
    assert info.value.retryable
    assert info.value.code == "UPSTREAM_ERROR"
    assert len(server.request_log) == 3


@pytest.mark.parametrize(
    "kind",
    [
        FaultKind.BAD_JSON,
        FaultKind.TRUNCATED,
        FaultKind.WRONG_SHAPE,
        FaultKind.SUCCESS_FALSE,
        FaultKind.DISCONNECT,
    ],
)
async def test_unreadable_responses_are_transient_and_retried(
    client: BackQuantClient, sim: Simulator, server: SimServer, kind: FaultKind
) -> None:
    sim.inject(Fault(kind))
    bundle = await client.bundle(["ETHUSDT"])
    assert bundle.symbols["ETHUSDT"].status is SymbolStatus.OK
    assert len(server.request_log) == 2


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        (FaultKind.TRUNCATED, "unreadable response body"),
        (FaultKind.BAD_JSON, "unreadable response body"),
        (FaultKind.WRONG_SHAPE, "unreadable response body"),
        (FaultKind.SUCCESS_FALSE, "success=false"),
        (FaultKind.DISCONNECT, "connection failed"),
    ],
)
async def test_unreadable_responses_raise_transient_when_they_persist(
    client: BackQuantClient, sim: Simulator, kind: FaultKind, says: str
) -> None:
    sim.inject(Fault(kind, count=3))
    with pytest.raises(FetchError) as info:
        await client.bundle(["ETHUSDT"])
    assert info.value.kind is FetchErrorKind.TRANSIENT
    assert says in str(info.value)


async def test_429_waits_retry_after_then_retries(
    server: SimServer, clock: Clock, sleeps: Sleeps
) -> None:
    server.budget.per_minute = 1

    async def sleep_and_tick(seconds: float) -> None:
        # Between the 429 and the retry the minute window rolls over.
        sleeps.calls.append(seconds)
        clock.advance(seconds)

    async with build_http_client(server.url, server.api_key) as http:
        client = BackQuantClient(
            http,
            api_key=server.api_key,
            sleep=sleep_and_tick,
            wall_clock=clock,
            rng=random.Random(0),
        )
        await client.bundle(["BTCUSDT"])
        assert client.rate_limit.remaining == 0
        assert client.rate_limit.limit == 1
        sleeps_before = len(sleeps.calls)
        bundle = await client.bundle(["BTCUSDT"])
    assert bundle.symbols["BTCUSDT"].status is SymbolStatus.OK
    expected = 60 - (clock.t - sleeps.calls[-1]) % 60
    assert len(sleeps.calls) == sleeps_before + 1
    assert sleeps.calls[-1] == pytest.approx(expected, abs=1.0)


async def test_429_with_a_long_retry_after_is_handed_back_not_slept(
    client: BackQuantClient, sim: Simulator, sleeps: Sleeps
) -> None:
    sim.inject(Fault(FaultKind.HTTP_ERROR, status=429, retry_after=3600))
    with pytest.raises(FetchError) as info:
        await client.bundle(["BTCUSDT"])
    assert info.value.kind is FetchErrorKind.RATE_LIMITED
    assert info.value.retry_after == 3600
    assert sleeps.calls == []


async def test_429_without_retry_after_waits_for_the_rate_limit_reset(
    client: BackQuantClient, sim: Simulator, sleeps: Sleeps, clock: Clock
) -> None:
    sim.inject(Fault(FaultKind.HTTP_ERROR, status=429))
    await client.bundle(["BTCUSDT"])
    window_end = (clock.t // 60 + 1) * 60
    assert sleeps.calls == [pytest.approx(window_end - clock.t)]


async def test_monthly_quota_at_zero_is_reported_not_slept_on(
    sim: Simulator, sleeps: Sleeps, clock: Clock
) -> None:
    srv = SimServer(sim, api_key="k", monthly_quota=1)
    await srv.start()
    try:
        async with build_http_client(srv.url, "k") as http:
            client = BackQuantClient(
                http, api_key="k", sleep=sleeps, wall_clock=clock, rng=random.Random(0)
            )
            await client.bundle(["BTCUSDT"])
            with pytest.raises(FetchError) as info:
                await client.bundle(["BTCUSDT"])
    finally:
        await srv.stop()
    assert info.value.kind is FetchErrorKind.QUOTA_EXHAUSTED
    assert info.value.retry_after is not None
    assert info.value.retry_after > 60
    assert client.rate_limit.quota_remaining == 0
    assert client.rate_limit.quota_limit == 1
    assert sleeps.calls == []


async def test_connection_refused_is_transient(sleeps: Sleeps) -> None:
    transport = httpx.AsyncHTTPTransport(retries=0)
    async with build_http_client("http://127.0.0.1:9", "k", transport=transport) as http:
        client = BackQuantClient(
            http,
            wall_clock=time.time,
            api_key="k",
            sleep=sleeps,
            retry=RetryPolicy(attempts=2),
            rng=random.Random(0),
        )
        with pytest.raises(FetchError) as info:
            await client.bundle(["BTCUSDT"])
    assert info.value.kind is FetchErrorKind.TRANSIENT
    assert len(sleeps.calls) == 1


async def test_timeouts_are_transient(server: SimServer, sim: Simulator, sleeps: Sleeps) -> None:
    sim.delay = 0.5
    async with build_http_client(server.url, server.api_key, timeout=0.1) as http:
        client = BackQuantClient(
            http,
            wall_clock=time.time,
            api_key=server.api_key,
            sleep=sleeps,
            retry=RetryPolicy(attempts=1),
            rng=random.Random(0),
        )
        with pytest.raises(FetchError) as info:
            await client.bundle(["BTCUSDT"])
    assert info.value.kind is FetchErrorKind.TRANSIENT
    assert "timed out" in str(info.value)


@pytest.mark.parametrize("version", ["2.0", "2.6", "2.7", "3.1"])
async def test_any_meta_version_is_accepted(clock: Clock, version: str) -> None:
    from gexbot.sim.market import SimConfig

    sim = Simulator(SimConfig(api_version=version), clock=clock)
    srv = SimServer(sim, api_key="k")
    await srv.start()
    try:
        async with build_http_client(srv.url, "k") as http:
            bundle = await BackQuantClient(
                http, api_key="k", wall_clock=clock, rng=random.Random(0)
            ).bundle(["BTCUSDT"])
    finally:
        await srv.stop()
    assert bundle.api_version == version
    assert bundle.symbols["BTCUSDT"].status is SymbolStatus.OK


async def test_base_url_with_v2_suffix_is_accepted(server: SimServer, clock: Clock) -> None:
    async with build_http_client(server.url + "/v2/", server.api_key) as http:
        client = BackQuantClient(
            http, api_key=server.api_key, wall_clock=clock, rng=random.Random(0)
        )
        bundle = await client.bundle(["BTCUSDT"])
    assert bundle.symbols["BTCUSDT"].status is SymbolStatus.OK


async def test_requests_carry_key_header_and_user_agent(server: SimServer) -> None:
    seen: list[httpx.Request] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request)

    async with build_http_client(server.url, server.api_key) as http:
        http.event_hooks["request"].append(hook)
        await BackQuantClient(
            http, wall_clock=time.time, api_key=server.api_key, rng=random.Random(0)
        ).bundle(["BTCUSDT"])
    assert seen[0].headers["X-API-Key"] == server.api_key
    assert seen[0].headers["User-Agent"].startswith("gexbot/")
    assert server.api_key not in str(seen[0].url)


async def test_wrong_key_names_the_setting_and_never_the_key(
    server: SimServer, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "bq_live_0123456789abcdef0123456789abcdef"
    caplog.set_level(logging.DEBUG)
    async with build_http_client(server.url, wrong) as http:
        client = BackQuantClient(
            http, wall_clock=time.time, api_key=wrong, sleep=sleeps, rng=random.Random(0)
        )
        with pytest.raises(FetchError) as info:
            await client.bundle(["BTCUSDT"])
    err = info.value
    assert err.kind is FetchErrorKind.AUTH
    assert "GEXBOT_API_KEY" in str(err)
    chain: list[BaseException] = [err]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    assert all(wrong not in repr(e) and wrong not in str(e) for e in chain)
    assert wrong not in caplog.text
    assert sleeps.calls == []


async def test_key_echoed_by_upstream_is_redacted(
    client: BackQuantClient, sim: Simulator, server: SimServer
) -> None:
    sim.inject(Fault(FaultKind.HTTP_ERROR, status=500, message=f"bad {server.api_key}", count=3))
    with pytest.raises(FetchError) as info:
        await client.bundle(["BTCUSDT"])
    assert server.api_key not in str(info.value)
    assert "[redacted]" in str(info.value)


# -- payloads the schema allows but no float holds, and bodies that break the JSON decoder -----


@pytest.fixture
async def raw_upstream() -> AsyncIterator[tuple[str, list[Any]]]:
    """An upstream that answers every request with the next scripted body: bytes (HTTP 200),
    or (status, bytes, headers)."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    bodies: list[Any] = []

    async def answer(request: web.Request) -> web.Response:
        item = bodies.pop(0)
        status, body, headers = item if isinstance(item, tuple) else (200, item, {})
        return web.Response(
            status=status, body=body, content_type="application/json", headers=headers
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), bodies
    finally:
        await server.close()


def _multi_body(hvl: str) -> bytes:
    return (
        '{"success": true, "meta": {"version": "2.0", "request_id": "req_1"}, "data": {'
        '"results": {"BTCUSDT": {"all_expiry": {"hvl": ' + hvl + ', "call_resistance": 85000},'
        '"spot_price": 81000, "computed_at": "2026-05-14T09:29:58Z"}},'
        '"requested": ["BTCUSDT"], "served": ["BTCUSDT"], "missing": [], "invalid": []}}'
    ).encode()


RECEIVED = datetime(2026, 5, 14, 9, 30, tzinfo=UTC).timestamp()  # 2 s after computed_at


@pytest.mark.parametrize("hvl", ["1e400", "-1" + "0" * 400, '"80000"'])
async def test_levels_beyond_float_range_read_as_null_over_http(
    raw_upstream: tuple[str, list[Any]], sleeps: Sleeps, hvl: str
) -> None:
    url, bodies = raw_upstream
    bodies.append(_multi_body(hvl))
    async with build_http_client(url, "k") as http:
        client = BackQuantClient(
            http, api_key="k", rng=random.Random(1), sleep=sleeps, wall_clock=lambda: RECEIVED
        )
        bundle = await client.bundle(["BTCUSDT"])
    btc = bundle.symbols["BTCUSDT"]
    assert btc.status is SymbolStatus.OK
    assert btc.level(Level.HVL) is None
    assert btc.level(Level.CALL_RESISTANCE) == 85000.0


async def test_a_body_nested_too_deep_for_the_decoder_is_a_transient_fetch_error(
    raw_upstream: tuple[str, list[Any]], sleeps: Sleeps
) -> None:
    url, bodies = raw_upstream
    bodies.extend([b"[" * 100_000 + b"]" * 100_000] * 2)
    async with build_http_client(url, "k") as http:
        client = BackQuantClient(
            http,
            wall_clock=time.time,
            api_key="k",
            rng=random.Random(1),
            sleep=sleeps,
            retry=RetryPolicy(attempts=2),
        )
        with pytest.raises(FetchError) as caught:
            await client.bundle(["BTCUSDT"])
    assert caught.value.kind is FetchErrorKind.TRANSIENT
    assert "RecursionError" in str(caught.value)
    assert not bodies  # retried once, like any unreadable response


async def test_an_error_without_meta_request_id_takes_the_x_request_id_header(
    raw_upstream: tuple[str, list[Any]], sleeps: Sleeps
) -> None:
    url, bodies = raw_upstream
    body = b'{"success": false, "error": {"code": "NOT_FOUND", "message": "No data"}, "meta": {}}'
    bodies.append((404, body, {"X-Request-ID": "req_from_header"}))
    async with build_http_client(url, "k") as http:
        client = BackQuantClient(
            http, wall_clock=time.time, api_key="k", rng=random.Random(1), sleep=sleeps
        )
        with pytest.raises(FetchError) as caught:
            await client.bundle(["BTCUSDT"])
    assert caught.value.request_id == "req_from_header"
