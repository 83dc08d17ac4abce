"""The web console on GEXBOT_HTTP_PORT: `GET /`, its live updates and its charts.

Built on the aiohttp server the health endpoints already use, with Jinja2 templates
(autoescaped): the page is complete as served, so it reads with JavaScript off. Live updates
are server-sent events: `/console/events` pushes the page's sections, rendered by the same
templates, as soon as a cycle or a delivery pass changed something (and every few seconds
regardless), so an open page follows within a second, with no polling and no front-end build.

Access: without GEXBOT_HTTP_TOKEN only loopback addresses are served (anyone else gets 403).
With it, every console request needs the token, as `Authorization: Bearer …` or through the
login form, which sets an HttpOnly, SameSite=Strict cookie holding a keyed hash of the token
(not the token). Tokens are compared in constant time and never logged. `/healthz`,
`/metrics` and the chat endpoints are not affected.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from gexbot.core.market.snapshot import BundleSnapshot, SymbolSnapshot
from gexbot.core.present.console_view import ConsoleView, StoreRows, symbol_cards, view_json
from gexbot.loops.health import json_dumps
from gexbot.loops.waits import Changes
from gexbot.store.console import console_rows

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
COOKIE = "gexbot_console"
REFRESH_ANYWAY = 5.0  # seconds between pushes when nothing changed (ages move on)
SECTIONS = ("symbols", "firing", "deliveries", "outbox", "mutes", "personal", "warnings", "role")


class WebConsole:
    """The console's routes, over what the running service holds."""

    def __init__(
        self,
        *,
        engine: Engine,
        latest: Callable[[], BundleSnapshot | None],
        role: Callable[[], Mapping[str, object]],
        chart: Callable[[SymbolSnapshot], Awaitable[bytes]],
        changes: Changes,
        clock: Callable[[], datetime],
        token: str | None,
        refresh_anyway: float = REFRESH_ANYWAY,
    ) -> None:
        self._engine = engine
        self._refresh_anyway = refresh_anyway
        self._closing = asyncio.Event()  # the server is stopping: end the event streams
        self._push: tuple[int, datetime, str] | None = None  # (version, made at, event body)
        self._push_lock = asyncio.Lock()
        self._latest = latest
        self._role = role
        self._chart = chart
        self._changes = changes
        self._clock = clock
        self._token = token
        # The cookie holds a keyed hash of the token, so a leaked cookie is not the token.
        self._session = (
            hmac.new(token.encode(), b"gexbot console session", hashlib.sha256).hexdigest()
            if token
            else None
        )
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    def add_routes(self, app: web.Application) -> None:
        """Mount the console on `app` (the health server's), behind its access check."""
        guarded = [
            web.get("/", self._page),
            web.get("/console/data.json", self._data),
            web.get("/console/events", self._events),
            web.get("/console/chart/{symbol}.png", self._chart_png),
        ]
        for route in guarded:
            app.router.add_route(route.method, route.path, self._guard(route.handler))
        app.router.add_get("/console/login", self._login_form)
        app.router.add_post("/console/login", self._login)
        app.router.add_static("/console/static", HERE / "static", append_version=True)
        app.on_shutdown.append(self._shutdown)

    async def _shutdown(self, _app: web.Application) -> None:
        self._closing.set()

    # -- access -------------------------------------------------------------------------------

    def _guard(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
        async def guarded(request: web.Request) -> web.StreamResponse:
            refusal = self._refusal(request)
            return refusal if refusal is not None else await handler(request)

        return guarded

    def _refusal(self, request: web.Request) -> web.Response | None:
        if self._token is None:
            if _loopback(request.remote):
                return None
            return web.Response(
                status=403,
                text="The console is served to this machine only: set GEXBOT_HTTP_TOKEN to "
                "open it to others.\n",
            )
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer ") and _same(bearer.removeprefix("Bearer "), self._token):
            return None
        cookie = request.cookies.get(COOKIE)
        if cookie and self._session and _same(cookie, self._session):
            return None
        if request.path == "/":
            return self._login_page(status=401, wrong=bool(bearer or cookie))
        return web.Response(status=401, text="a token is required\n")

    def _login_page(self, *, status: int, wrong: bool) -> web.Response:
        html = self._templates.get_template("login.html").render(wrong=wrong)
        return web.Response(status=status, text=html, content_type="text/html")

    async def _login_form(self, _request: web.Request) -> web.Response:
        return self._login_page(status=200, wrong=False)

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        given = str(form.get("token", ""))
        if self._token is None or self._session is None or not _same(given, self._token):
            return self._login_page(status=401, wrong=True)
        response = web.Response(status=303, headers={"Location": "/"})
        response.set_cookie(
            COOKIE,
            self._session,
            httponly=True,
            samesite="Strict",
            secure=request.secure,
            path="/",
        )
        return response

    # -- the page -----------------------------------------------------------------------------

    async def view(self) -> ConsoleView:
        """The console's view now (store reads off the event loop)."""
        now = self._clock()

        def read() -> tuple[BundleSnapshot | None, StoreRows, str | None]:
            # The console is where an operator looks during an outage: it shows what it can.
            try:
                bundle = self._latest()
                with self._engine.connect() as conn:
                    return bundle, console_rows(conn, now=now), None
            except SQLAlchemyError as exc:
                problem = f"the database cannot be reached ({type(exc).__name__})"
                log.warning("web console: %s", problem)
                return None, StoreRows(), problem

        bundle, rows, problem = await asyncio.to_thread(read)
        return ConsoleView(now, symbol_cards(bundle, now), rows, dict(self._role()), problem)

    def sections(self, view: ConsoleView) -> dict[str, str]:
        """Each section of the page as HTML (what a live update replaces)."""
        module: Any = self._templates.get_template("sections.html").make_module({"v": view})
        return {name: str(getattr(module, name)(view)) for name in SECTIONS}

    async def _page(self, _request: web.Request) -> web.Response:
        view = await self.view()
        html = self._templates.get_template("console.html").render(
            v=view, sections=self.sections(view), version=self._changes.version
        )
        return web.Response(text=html, content_type="text/html")

    async def _data(self, _request: web.Request) -> web.Response:
        return web.json_response(view_json(await self.view()), dumps=json_dumps)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # a proxy must not hold the events back
            }
        )
        await response.prepare(request)
        version = -1
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            while True:
                changed = asyncio.ensure_future(self._changes.after(version, self._refresh_anyway))
                await asyncio.wait({changed, closing}, return_when=asyncio.FIRST_COMPLETED)
                if closing.done():
                    changed.cancel()
                    break
                version = changed.result()
                body = await self._push_body(version)
                await response.write(f"event: sections\ndata: {body}\n\n".encode())
        except ConnectionResetError:
            pass  # the page was closed
        finally:
            closing.cancel()
        return response

    async def _push_body(self, version: int) -> str:
        """The sections at `version` as one event body, made once for every open page (the
        store reads and the render are shared); remade when older than half the refresh."""
        async with self._push_lock:
            now = self._clock()
            kept = self._push
            if (
                kept is None
                or kept[0] != version
                or (now - kept[1]).total_seconds() >= self._refresh_anyway / 2
            ):
                kept = (version, now, json.dumps(self.sections(await self.view())))
                self._push = kept
            return kept[2]

    async def _chart_png(self, request: web.Request) -> web.Response:
        bundle = await asyncio.to_thread(self._latest)
        symbol = request.match_info["symbol"].upper()
        snap = bundle.symbols.get(symbol) if bundle is not None else None
        if snap is None or snap.spot is None:
            return web.Response(status=404, text="no levels for that symbol yet\n")
        png = await self._chart(snap)
        return web.Response(
            body=png, content_type="image/png", headers={"Cache-Control": "max-age=60"}
        )


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False
