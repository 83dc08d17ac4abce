"""`/healthz`, `/status` and `/metrics` (Prometheus text format) on GEXBOT_HTTP_PORT (and the
Slack command endpoint, when it is on)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    """Every metric the bot exports, on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = Counter("gexbot_polls", "Polls by outcome", ["outcome"], registry=r)
        self.upstream_latency = Histogram(
            "gexbot_upstream_latency_seconds",
            "BackQuant request latency",
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
        )
        self.rate_remaining = Gauge(
            "gexbot_rate_limit_remaining", "X-RateLimit-Remaining of the last response", registry=r
        )
        self.quota_remaining = Gauge(
            "gexbot_quota_remaining", "X-Quota-Remaining of the last response", registry=r
        )
        self.symbols = Gauge("gexbot_symbols", "Symbols by status", ["status"], registry=r)
        self.alerts = Counter(
            "gexbot_alerts", "Alerts decided, by rule and reason", ["rule", "reason"], registry=r
        )
        self.deliveries = Counter(
            "gexbot_deliveries",
            "Deliveries by channel and outcome",
            ["channel", "status"],
            registry=r,
        )
        self.cycle_seconds = Histogram(
            "gexbot_cycle_duration_seconds",
            "Evaluate + persist time per cycle",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.cycle_errors = Counter(
            "gexbot_cycle_errors", "Cycles that raised an exception", registry=r
        )
        self.personal_alerts = Gauge(
            "gexbot_personal_alerts",
            "Personal alerts the leader evaluates (not paused), by platform",
            ["platform"],
            registry=r,
        )
        self.leadership_changes = Counter(
            "gexbot_leadership_changes",
            "Times this process became or stopped being the leader",
            registry=r,
        )


class HealthServer:
    """Serves health and metrics; `health()` says whether the feed is fresh enough."""

    def __init__(
        self,
        metrics: Metrics,
        health: Callable[[], tuple[bool, dict[str, object]]],
        *,
        status: Callable[[], dict[str, object]] | None = None,
        routes: Sequence[Callable[[web.Application], None]] = (),
    ) -> None:
        self._routes = routes  # more endpoints on the same port (the Slack endpoint)
        self._metrics = metrics
        self._health = health
        self._status = status
        self._runner: web.AppRunner | None = None
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics_handler)
        if self._status is not None:
            app.router.add_get("/status", self._status_handler)
        for add in self._routes:
            add(app)
        return app

    async def start(self, host: str, port: int) -> str:
        """Listen; returns the base URL."""
        self._runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        ok, body = self._health()
        return web.json_response(body, status=200 if ok else 503, dumps=json_dumps)

    async def _status_handler(self, _request: web.Request) -> web.Response:
        assert self._status is not None  # noqa: S101 - routed only when set
        return web.json_response(self._status(), dumps=json_dumps)

    async def _metrics_handler(self, _request: web.Request) -> web.Response:
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def json_dumps(obj: object) -> str:
    """JSON with datetimes as ISO 8601 (and anything else unusual as its text)."""
    import json  # noqa: PLC0415

    return json.dumps(obj, default=lambda o: o.isoformat() if isinstance(o, datetime) else str(o))
