"""The simulator over HTTP (aiohttp): BackQuant's paths, envelopes, auth and rate limits."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from gexbot.core.market.symbols import MAX_SYMBOLS_PER_REQUEST, SUPPORTED_SYMBOLS
from gexbot.sim import payloads, venues
from gexbot.sim.chain import ListedOption
from gexbot.sim.market import ERROR_CODES, Fault, FaultKind, Simulator

log = logging.getLogger(__name__)

MULTI_INCLUDES = frozenset({"expected_move", "max_pain", "ranked", "zones"})
SINGLE_INCLUDES = MULTI_INCLUDES | {"spot", "candles"}
PUBLIC_PATHS = frozenset({"/v2/health", "/v2/openapi.json", "/v2/docs", "/v2/redoc"})
#: The venues' public paths: no BackQuant key, no BackQuant rate limit.
VENUE_PREFIXES = ("/api/", "/v5/")
DEFAULT_KEY = "demo"


def venue_of(path: str) -> str:
    """The venue a public path belongs to: OKX's `/api/v5/`, Deribit's `/api/v2/`, Bybit's
    `/v5/`."""
    if path.startswith("/api/v5/"):
        return "okx"
    return "deribit" if path.startswith("/api/") else "bybit"


#: BackQuant's published document, served at /v2/openapi.json like the real API.
OPENAPI_DOCUMENT = Path(__file__).with_name("openapi-v2.json")
_DOCS_PAGE = """<!doctype html><title>BackQuant v2 (simulated)</title>
<p>The simulated BackQuant v2 API. The OpenAPI document is at
<a href="/v2/openapi.json">/v2/openapi.json</a>.</p>"""


@dataclass(slots=True)
class Budget:
    """A per-key fixed-window minute budget and an optional monthly quota."""

    per_minute: int = 600
    monthly: int | None = None
    used_month: int = 0
    window: int = -1
    used: int = 0
    period: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class SimServer:
    """Serves a `Simulator` on 127.0.0.1 (or any host) with BackQuant's HTTP behaviour."""

    def __init__(
        self,
        sim: Simulator,
        *,
        api_key: str = DEFAULT_KEY,
        rate_limit: int = 600,
        monthly_quota: int | None = None,
        request_log: Path | None = None,
    ) -> None:
        self.sim = sim
        # One JSON line per request (time, path, refresh tick, User-Agent): how tests prove
        # that replicas never poll the same refresh window twice.
        self._log_file = request_log.open("a", buffering=1) if request_log else None
        self.api_key = api_key
        self.budget = Budget(per_minute=rate_limit, monthly=monthly_quota)
        self.requests: list[web.Request] = []
        self.request_log: list[tuple[str, dict[str, str]]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle ------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/v2/health", self._health)
        app.router.add_get("/v2/openapi.json", self._openapi)
        app.router.add_get("/v2/docs", self._docs)
        app.router.add_get("/v2/redoc", self._docs)
        app.router.add_get("/v2/status", self._status)
        app.router.add_get("/v2/multi/gex/levels", self._multi)
        app.router.add_get("/v2/gex/levels", self._levels)
        app.router.add_get("/v2/gex/stress-history", self._stress_history)
        # The venues' public chains, keyless as on the real hosts (one base URL for all three).
        app.router.add_get("/api/v2/public/get_book_summary_by_currency", self._deribit_book)
        app.router.add_get("/api/v2/public/get_index_price", self._deribit_index)
        app.router.add_get("/v5/market/tickers", self._bybit_tickers)
        app.router.add_get("/api/v5/public/opt-summary", self._okx_summary)
        app.router.add_get("/api/v5/public/open-interest", self._okx_open_interest)
        app.router.add_get("/api/v5/market/index-tickers", self._okx_index)
        return app

    # -- the venues' chains ---------------------------------------------------------------

    def _coin_chain(self, coin: str) -> tuple[list[ListedOption], float, float]:
        symbol = f"{coin}USDT"
        if symbol not in self.sim.states:
            return [], 0.0, self.sim.now()
        return self.sim.listed(symbol)

    async def _deribit_book(self, request: web.Request) -> web.Response:
        coin = request.query.get("currency", "").upper()
        if coin == "USDC":  # linear options are listed under USDC: SOL's, here
            coin = "SOL"
        options, spot, at = self._coin_chain(coin)
        return web.json_response(venues.deribit_book(coin, options, spot, at))

    async def _deribit_index(self, request: web.Request) -> web.Response:
        coin = request.query.get("index_name", "").split("_")[0].upper()
        _, spot, _ = self._coin_chain(coin)
        return web.json_response(venues.deribit_index(coin, spot))

    async def _bybit_tickers(self, request: web.Request) -> web.Response:
        coin = request.query.get("baseCoin", "").upper()
        options, spot, at = self._coin_chain(coin)
        return web.json_response(venues.bybit_tickers(coin, options, spot, at))

    async def _okx_summary(self, request: web.Request) -> web.Response:
        coin = request.query.get("instFamily", "").split("-")[0].upper()
        options, spot, at = self._coin_chain(coin)
        return web.json_response(venues.okx_summary(coin, options, spot, at))

    async def _okx_open_interest(self, request: web.Request) -> web.Response:
        coin = request.query.get("instFamily", "").split("-")[0].upper()
        options, _, _ = self._coin_chain(coin)
        return web.json_response(venues.okx_open_interest(coin, options))

    async def _okx_index(self, request: web.Request) -> web.Response:
        coin = request.query.get("instId", "").split("-")[0].upper()
        _, spot, _ = self._coin_chain(coin)
        return web.json_response(venues.okx_index(coin, spot))

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen (port 0 picks a free one) and return the base URL."""
        self._runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.url = f"http://{host}:{bound[1]}"
        return self.url

    async def stop(self) -> None:
        """Stop listening and close connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # -- cross-cutting ------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await self._serve(request, handler)
        except web.HTTPException:
            raise
        except Exception:  # any defect still answers as the v2 API promises
            log.exception("simulator failed on %s %s", request.method, request.path)
            body = payloads.error_body(self.sim, "INTERNAL_ERROR", "Internal server error")
            return self._json(body, 500)

    async def _serve(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.sim.advance()
        self.request_log.append((request.path, dict(request.query)))
        if self._log_file is not None:
            entry = {
                "t": self.sim.now(),
                "path": request.path,
                "tick": self.sim.tick,
                "agent": request.headers.get("User-Agent", ""),
            }
            self._log_file.write(json.dumps(entry) + "\n")
        if request.path.startswith(VENUE_PREFIXES):
            if venue_of(request.path) in self.sim.venues_down:  # a scenario's outage
                return web.json_response({"error": "simulated outage"}, status=503)
            return await self._handle(request, handler, {})
        if request.path in PUBLIC_PATHS:
            return await self._handle(request, handler, {})
        headers = self._count()
        key = request.headers.get("X-API-Key")
        if key is None or key != self.api_key:
            # The real API rejects surrounding whitespace too (a documented 401 cause).
            msg = "Missing X-API-Key header" if key is None else "Invalid API key"
            return self._json(payloads.error_body(self.sim, "UNAUTHORIZED", msg), 401, headers)
        if self.sim.forbidden:
            body = payloads.error_body(
                self.sim, "FORBIDDEN", "Your subscription does not include API access"
            )
            return self._json(body, 403, headers)
        limited = self._limited(headers)
        if limited is not None:
            return limited
        if self.sim.delay > 0:
            await asyncio.sleep(self.sim.delay)
        fault = self.sim.next_fault()
        if fault is not None and fault.kind is FaultKind.DISCONNECT:
            if request.transport is not None:
                request.transport.close()
            raise web.HTTPServiceUnavailable  # never reaches the closed socket
        if fault is not None:
            resp = self._fault(fault, headers)
            resp.headers.setdefault("X-Request-ID", self.sim.request_id())
            return resp
        return await self._handle(request, handler, headers)

    async def _handle(
        self, request: web.Request, handler: Any, headers: dict[str, str]
    ) -> web.StreamResponse:
        # The docs promise the error envelope on every non-2xx response: aiohttp's own
        # 404 (no route) and 405 (wrong method) are plain text, so translate them.
        try:
            resp: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = ERROR_CODES.get(exc.status, "INTERNAL_ERROR")
            message = f"{exc.reason}: {request.method} {request.path}"
            resp = self._json(payloads.error_body(self.sim, code, message), exc.status, headers)
            if "Allow" in exc.headers:  # RFC 9110: a 405 names the methods that would work
                resp.headers["Allow"] = exc.headers["Allow"]
            return resp
        resp.headers.update(headers)
        return resp

    def _count(self) -> dict[str, str]:
        now = self.sim.now()
        b = self.budget
        window = int(now // 60)
        if window != b.window:
            b.window, b.used = window, 0
        period = datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m")
        if period != b.period:
            b.period, b.used_month = period, 0
        b.used += 1
        b.used_month += 1
        headers = {
            "X-RateLimit-Limit": str(b.per_minute),
            "X-RateLimit-Remaining": str(max(0, b.per_minute - b.used)),
            "X-RateLimit-Reset": str((window + 1) * 60),
        }
        if b.monthly is not None:
            headers.update(
                {
                    "X-Quota-Limit": str(b.monthly),
                    "X-Quota-Used": str(min(b.used_month, b.monthly)),
                    "X-Quota-Remaining": str(max(0, b.monthly - b.used_month)),
                    "X-Quota-Period": period,
                }
            )
        return headers

    def _limited(self, headers: dict[str, str]) -> web.Response | None:
        b = self.budget
        now = self.sim.now()
        if b.monthly is not None and b.used_month > b.monthly:
            month = datetime.fromtimestamp(now, tz=UTC).replace(
                day=1, hour=0, minute=0, second=0, microsecond=0
            )
            nxt = (
                month.replace(year=month.year + 1, month=1)
                if month.month == 12
                else (month.replace(month=month.month + 1))
            )
            wait = math.ceil(nxt.timestamp() - now)
            msg = f"Monthly quota of {b.monthly} requests exhausted; upgrade your plan."
            return self._json(
                payloads.error_body(self.sim, "RATE_LIMIT_EXCEEDED", msg),
                429,
                {**headers, "Retry-After": str(wait)},
            )
        if b.used > b.per_minute:
            wait = max(1, math.ceil((b.window + 1) * 60 - now))
            body = payloads.error_body(
                self.sim,
                "RATE_LIMIT_EXCEEDED",
                f"Rate limit exceeded. Try again in {wait} seconds.",
                {"retry_after_seconds": wait, "limit": f"{b.per_minute} per 1 minute"},
            )
            return self._json(body, 429, {**headers, "Retry-After": str(wait)})
        return None

    def _fault(self, fault: Fault, headers: dict[str, str]) -> web.StreamResponse:
        if fault.kind is FaultKind.HTTP_ERROR:
            extra = dict(headers)
            if fault.retry_after is not None:
                extra["Retry-After"] = str(math.ceil(fault.retry_after))
            msg = fault.message or f"Simulated {fault.error_code}"
            return self._json(
                payloads.error_body(self.sim, fault.error_code, msg), fault.status, extra
            )
        if fault.kind is FaultKind.BAD_JSON:
            return web.Response(
                text="<html>502 Bad Gateway</html>", content_type="text/html", headers=headers
            )
        if fault.kind is FaultKind.TRUNCATED:
            text = json.dumps(
                {"success": True, "data": {"results": {"BTCUSDT": {"all_expiry": {"hvl": 1}}}}}
            )
            return web.Response(text=text[:40], content_type="application/json", headers=headers)
        if fault.kind is FaultKind.WRONG_SHAPE:
            return self._json(["not", "an", "envelope"], 200, headers)
        if fault.kind is FaultKind.SUCCESS_FALSE:
            body = payloads.error_body(self.sim, "INTERNAL_ERROR", "Simulated success=false")
            return self._json(body, 200, headers)
        raise AssertionError(f"unhandled fault {fault.kind}")  # DISCONNECT is handled upstream

    @staticmethod
    def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> web.Response:
        resp = web.Response(
            # NaN and infinities are not JSON: refuse them here rather than serve them.
            text=json.dumps(body, separators=(",", ":"), allow_nan=False),
            status=status,
            content_type="application/json",
            headers=headers,
        )
        request_id = body.get("meta", {}).get("request_id") if isinstance(body, dict) else None
        if request_id:
            resp.headers["X-Request-ID"] = request_id  # the same value as meta.request_id
        return resp

    def _validation(
        self, loc: str, msg: str, status: int = 422, kind: str = "value_error"
    ) -> web.Response:
        details = {"errors": [{"type": kind, "loc": ["query", loc], "msg": msg}]}
        body = payloads.error_body(
            self.sim, "VALIDATION_ERROR", "Invalid request parameters", details
        )
        return self._json(body, status)

    def _symbol_param(self, request: web.Request) -> tuple[str | None, web.Response | None]:
        symbol = request.query.get("symbol", "BTCUSDT")
        # A scenario's `unsupported` list shrinks the enum for every endpoint, as on the multi.
        supported = [s for s in SUPPORTED_SYMBOLS if s in self.sim.supported]
        if symbol not in supported:
            names = ", ".join(f"'{s}'" for s in supported[:-1])
            msg = f"Input should be {names} or '{supported[-1]}'" if supported else "No symbols"
            return None, self._validation("symbol", msg, kind="literal_error")
        return symbol, None

    def _positioning(self, request: web.Request) -> tuple[str, web.Response | None]:
        value = request.query.get("positioning", "flow")
        if value not in ("flow", "std"):
            return value, self._validation("positioning", "Input should be 'flow' or 'std'")
        return value, None

    @staticmethod
    def _venues(request: web.Request) -> tuple[list[str] | None, float]:
        raw = request.query.get("exchanges")
        if not raw:
            return None, 1.0
        chosen = [v.strip() for v in raw.split(",") if v.strip() in payloads.VENUES]
        if not chosen:  # an all-unknown filter means every venue (documented)
            return None, 1.0
        # A re-aggregation: fewer venues, less OI; strikes (levels) barely move.
        return chosen, len(chosen) / len(payloads.VENUES)

    @staticmethod
    def _includes(request: web.Request, allowed: frozenset[str]) -> set[str]:
        raw = request.query.get("include") or ""
        # Assumed (open question 8): unknown include tokens are ignored, not rejected.
        return {t.strip() for t in raw.split(",")} & allowed

    # -- handlers -------------------------------------------------------------------------

    async def _health(self, _request: web.Request) -> web.Response:
        # Subsystem key names are undocumented (§8.2); these are assumed.
        data = {"status": "ok", "subsystems": {"redis": "ok", "db": "ok"}}
        return self._json({"success": True, "data": data, "meta": payloads.meta(self.sim)}, 200)

    async def _openapi(self, _request: web.Request) -> web.FileResponse:
        return web.FileResponse(OPENAPI_DOCUMENT, headers={"X-Request-ID": self.sim.request_id()})

    async def _docs(self, _request: web.Request) -> web.Response:
        headers = {"X-Request-ID": self.sim.request_id()}
        return web.Response(text=_DOCS_PAGE, content_type="text/html", headers=headers)

    async def _status(self, _request: web.Request) -> web.Response:
        body = {"success": True, "data": payloads.status(self.sim), "meta": payloads.meta(self.sim)}
        return self._json(body, 200)

    async def _multi(self, request: web.Request) -> web.Response:
        raw = request.query.get("symbols")
        if raw is None:
            return self._validation("symbols", "Field required", kind="missing")
        # Assumed (open question 6): items are trimmed; matching is case-sensitive.
        requested = list(dict.fromkeys(s.strip() for s in raw.split(",") if s.strip()))
        if not requested:
            return self._validation("symbols", "At least one symbol is required", 400)
        if len(requested) > MAX_SYMBOLS_PER_REQUEST:
            msg = f"At most {MAX_SYMBOLS_PER_REQUEST} symbols per request"
            return self._validation("symbols", msg, 400)
        positioning, bad = self._positioning(request)
        if bad is not None:
            return bad
        venues, scale = self._venues(request)
        includes = self._includes(request, MULTI_INCLUDES)
        results: dict[str, Any] = {}
        served, missing, invalid = [], [], []
        for sym in requested:
            if sym not in self.sim.supported or sym not in self.sim.states:
                invalid.append(sym)  # assumed (open question 6): no key in `results`
            elif self.sim.states[sym].missing:
                results[sym] = None
                missing.append(sym)
            else:
                results[sym] = payloads.entry(
                    self.sim, sym, includes, positioning=positioning, scale=scale
                )
                served.append(sym)
        data = {
            "results": results,
            "requested": requested,
            "served": served,
            "missing": missing,
            "invalid": invalid,
        }
        extra = {
            "positioning_requested": positioning,
            "aggregation": "multi-venue chain: " + ", ".join(venues or payloads.VENUES),
        }
        meta = payloads.meta(
            self.sim,
            source=list(payloads.VENUES),
            exchanges_filtered=venues,
            rate_limit=self._rate_echo(),
            extra=extra,
        )
        return self._json({"success": True, "data": data, "meta": meta}, 200)

    async def _levels(self, request: web.Request) -> web.Response:
        symbol, bad = self._symbol_param(request)
        if bad is not None or symbol is None:
            return bad or self._validation("symbol", "invalid")
        positioning, bad = self._positioning(request)
        if bad is not None:
            return bad
        if symbol not in self.sim.states or self.sim.states[symbol].missing:
            body = payloads.error_body(self.sim, "NOT_FOUND", f"No data for {symbol}")
            return self._json(body, 404)
        venues, scale = self._venues(request)
        includes = self._includes(request, SINGLE_INCLUDES)
        data = payloads.entry(self.sim, symbol, includes, positioning=positioning, scale=scale)
        spot = data.pop("spot_price")
        computed_at = self.sim.computed_at(symbol)
        data.pop("computed_at")
        if "spot" in includes:
            perps = round(spot * 1.0004, 2) if spot is not None else None
            data["spot"] = {"spot_price": spot, "perps_price": perps}
        if "candles" in includes:
            data["candles"] = payloads.candles(self.sim, symbol)
        effective = data["positioning"]
        extra: dict[str, Any] = {"positioning": effective, "positioning_requested": positioning}
        if effective != positioning:
            extra["positioning_fallback_reason"] = "no_aggressor_tape_for_symbol"
        meta = payloads.meta(
            self.sim,
            symbol=symbol,
            spot_price=spot,
            computed_at=payloads.iso(computed_at, millis=True),
            freshness_seconds=round(self.sim.now() - computed_at, 1),
            source=list(payloads.VENUES),
            exchanges_filtered=venues,
            rate_limit=self._rate_echo(),
            extra=extra,
        )
        return self._json({"success": True, "data": data, "meta": meta}, 200)

    async def _stress_history(self, request: web.Request) -> web.Response:
        symbol, bad = self._symbol_param(request)
        if bad is not None or symbol is None:
            return bad or self._validation("symbol", "invalid")
        raw_days = request.query.get("days", "7")
        try:
            days = int(raw_days)
        except ValueError:
            return self._validation("days", "Input should be a valid integer", kind="int_parsing")
        if not 1 <= days <= 30:
            return self._validation("days", "Input should be between 1 and 30")
        data = payloads.stress_history(self.sim, symbol, days)
        meta = payloads.meta(self.sim, symbol=symbol, rate_limit=self._rate_echo())
        return self._json({"success": True, "data": data, "meta": meta}, 200)

    def _rate_echo(self) -> dict[str, int]:
        b = self.budget
        return {
            "limit": b.per_minute,
            "remaining": max(0, b.per_minute - b.used),
            "reset": (b.window + 1) * 60,
        }
