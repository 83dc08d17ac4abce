"""`/healthz`, `/status` and `/metrics` (Prometheus text format) on GEXBOT_HTTP_PORT (and the
Slack command endpoint, when it is on)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

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


class PollRecord(Protocol):
    """What health reads of the poll loop's state."""

    started_at: datetime
    last_success: datetime | None
    cycles: int

    @property
    def last_failure(self) -> object | None: ...


class Roles(Protocol):
    """What health reads of the leadership."""

    def describe(self) -> dict[str, object]: ...


class Health:
    """`/healthz` and `/status` of one replica.

    Leader: healthy while the last successful poll is younger than 3 intervals. Standby:
    healthy while it can read the lease (it is ready to take over).
    """

    def __init__(
        self,
        *,
        poll: Callable[[], PollRecord],
        leadership: Roles,
        interval: float,
        rate_limit_remaining: Callable[[], int | None],
        personal_counts: Callable[[], Mapping[str, int]],
        last_stamps: Callable[[], tuple[datetime | None, datetime | None]],
        clock: Callable[[], datetime],
    ) -> None:
        self._poll = poll
        self._leadership = leadership
        self._interval = interval
        self._rate_limit_remaining = rate_limit_remaining
        self._personal_counts = personal_counts
        self._last_stamps = last_stamps
        self._clock = clock

    def __call__(self) -> tuple[bool, dict[str, object]]:
        """(healthy, the body of `/healthz`)."""
        role = self._leadership.describe()
        if role["role"] != "leader":  # Role.LEADER: leadership imports this module
            ok = role.get("database_error") is None
            leader = role.get("leader")
            reason = f"standby; leader is {leader}" if leader else "standby; no leader right now"
            if not ok:
                reason = f"standby cannot reach the database ({role['database_error']})"
            return ok, {"status": "ok" if ok else "down", "reason": reason, **role}
        ok, body = self._poll_health()
        return ok, {**body, **role, "personal_alerts": dict(self._personal_counts())}

    def status(self) -> dict[str, object]:
        """`/status`: the role, the leader, and this process's polling record."""
        state = self._poll()
        received, upstream = self._last_stamps()
        return {
            **self._leadership.describe(),
            "cycles": state.cycles,
            "last_success": state.last_success,
            "started_at": state.started_at,
            # our clock vs upstream's: a large gap between the two is clock skew, not lag
            "last_received_at": received,
            "last_upstream_at": upstream,
        }

    def _poll_health(self) -> tuple[bool, dict[str, object]]:
        state = self._poll()
        now = self._clock()
        limit = 3 * self._interval
        last = state.last_success
        age = (now - last).total_seconds() if last else None
        ok = age is not None and age <= limit
        reason = "ok" if ok else ("no successful poll yet" if last is None else "feed down")
        if not ok and state.last_failure is not None:
            reason += f": {state.last_failure}"
        return ok, {
            "status": "ok" if ok else "down",
            "reason": reason,
            "last_success": last,
            "age_seconds": age,
            "limit_seconds": limit,
            "rate_limit_remaining": self._rate_limit_remaining(),
        }


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
    return json.dumps(obj, default=lambda o: o.isoformat() if isinstance(o, datetime) else str(o))
