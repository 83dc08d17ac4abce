"""BackQuant v2 client on httpx: the bundle endpoint, single-symbol levels and stress history.

Every failure leaves as `FetchError`, whose `kind` says what to do next. The API key is sent
only as the `X-API-Key` header and is scrubbed from every message this module produces.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TypedDict, TypeVar, Unpack

import httpx

from gexbot import USER_AGENT
from gexbot.core.market.backoff import backoff_delay, parse_retry_after, seconds_until_reset
from gexbot.core.market.poll_failure import FetchErrorKind
from gexbot.core.market.snapshot import BundleSnapshot, StressHistory, SymbolSnapshot
from gexbot.core.market.symbols import chunks, dedupe
from gexbot.core.market.wire import (
    FUTURE_TOLERANCE,
    Envelope,
    WireFormatError,
    merge_bundles,
    parse_envelope,
    parse_multi,
    parse_single,
    stress_history,
)
from gexbot.core.present.format import printable

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Includes the multi endpoint accepts (backquant-v2.md §5.1); `spot`/`candles` are single-only.
MULTI_INCLUDES = frozenset({"expected_move", "max_pain", "ranked", "zones"})
SINGLE_INCLUDES = MULTI_INCLUDES | {"spot", "candles"}


_RETRIED = frozenset({FetchErrorKind.TRANSIENT, FetchErrorKind.RATE_LIMITED})


class _Where(TypedDict, total=False):
    """Where a failed request stood, as `FetchError` keeps it."""

    status: int | None
    code: str | None
    retry_after: float | None
    request_id: str | None


class FetchError(Exception):
    """A BackQuant request failed; `kind` says what to do next."""

    def __init__(
        self,
        kind: FetchErrorKind,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.request_id = request_id

    @property
    def retryable(self) -> bool:
        """True when the same request may succeed later without a configuration change."""
        return self.kind in _RETRIED


@dataclass(frozen=True, slots=True)
class RateLimitState:
    """The last rate-limit and quota headers seen: the poller's metrics read `remaining` and
    `quota_remaining`; a 429 reads `reset` and whether the quota is spent."""

    limit: int | None = None
    remaining: int | None = None
    reset: datetime | None = None
    quota_limit: int | None = None
    quota_remaining: int | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries: `attempts` tries in all; waits honour `Retry-After` up to `max_wait`."""

    attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_wait: float = 60.0


#: Counts and epoch seconds a header may hold; anything beyond is not a reading (`inf`, `1e400`).
_HEADER_MAX = 2**53


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    """A non-negative whole-number header, or None (absent, or unreadable: logged once per
    response, since a header we cannot read must count as absent, never fail the request)."""
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (0 <= number <= _HEADER_MAX):  # also false for NaN
        log.warning("ignored an unreadable %s header: %s", name, printable(value, limit=40))
        return None
    return int(number)


def _printable_or_none(text: str | None) -> str | None:
    return printable(text, limit=128) if text is not None else None


def _epoch(seconds: int | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC) if seconds is not None else None
    except (OverflowError, OSError, ValueError):  # beyond the platform's datetime range
        return None


def build_http_client(
    api_url: str,
    api_key: str,
    *,
    timeout: float = 10.0,
    transport: httpx.AsyncBaseTransport | None = None,
    instance: str | None = None,
) -> httpx.AsyncClient:
    """An httpx client for BackQuant: base URL, key header, User-Agent, timeouts.

    `instance` (GEXBOT_INSTANCE) goes into the User-Agent, so upstream's logs (and the
    simulator's) tell replicas apart.
    """
    base = api_url.rstrip("/")
    if base.endswith("/v2"):  # users paste the documented base `…/v2`; paths add it again
        base = base[: -len("/v2")]
    return httpx.AsyncClient(
        base_url=base,
        headers={
            "X-API-Key": api_key,
            "User-Agent": f"{USER_AGENT} instance/{instance}" if instance else USER_AGENT,
            "Accept": "application/json",
        },
        timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
        transport=transport or httpx.AsyncHTTPTransport(retries=1),
        follow_redirects=False,
    )


class BackQuantClient:
    """Typed, rate-limit-aware access to the endpoints the bot uses."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_key: str,
        retry: RetryPolicy | None = None,
        rng: random.Random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall_clock: Callable[[], float],
        stale_after: float = 90.0,
    ) -> None:
        self._http = http
        self._secret = api_key
        self._retry = retry or RetryPolicy()
        self._rng = rng
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._stale_after = stale_after  # GEXBOT_STALE_AFTER: parsing yields final statuses
        self._rate = RateLimitState()
        self._ahead: set[str] = set()  # symbols whose data is dated in the future
        self._lock = asyncio.Lock()

    @property
    def rate_limit(self) -> RateLimitState:
        """The rate-limit and quota state from the latest response."""
        return self._rate

    # -- public calls ---------------------------------------------------------------------

    async def bundle(
        self,
        symbols: Iterable[str],
        include: Iterable[str] = (),
        exchanges: Sequence[str] | None = None,
        positioning: str | None = None,
    ) -> BundleSnapshot:
        """Levels for every symbol: one request per 8 symbols, merged in the caller's order
        (`positioning`: `std` or `flow`; unset, BackQuant's default, `flow`)."""
        wanted = dedupe(symbols)
        inc = sorted(set(include) & MULTI_INCLUDES)
        parts = []
        for part in chunks(wanted):
            params = {"symbols": ",".join(part)}
            if inc:
                params["include"] = ",".join(inc)
            if exchanges:
                params["exchanges"] = ",".join(exchanges)
            if positioning:
                params["positioning"] = positioning
            env = await self._get("/v2/multi/gex/levels", params)
            received_at = self._received_at()
            parts.append(
                self._parse(
                    "multi levels payload",
                    partial(
                        parse_multi,
                        env,
                        part,
                        received_at=received_at,
                        stale_after=self._stale_after,
                    ),
                )
            )
        bundle = merge_bundles(parts)
        self._note_future(bundle)
        return bundle

    def _note_future(self, bundle: BundleSnapshot) -> None:
        """One warning when a symbol's data starts coming from the future (a broken clock
        upstream or here), not one per poll; the wire has already marked it stale."""
        now = bundle.received_at
        for sym, snap in bundle.symbols.items():
            age = snap.age_seconds(now) if now is not None else None
            if age is not None and age < -FUTURE_TOLERANCE:
                if sym not in self._ahead:
                    self._ahead.add(sym)
                    log.warning(
                        "%s data is dated %s, ahead of this machine's clock; treated as stale "
                        "until it is not",
                        sym,
                        snap.computed_at.isoformat() if snap.computed_at else "?",
                    )
            else:
                self._ahead.discard(sym)

    async def levels(self, symbol: str, include: Iterable[str] = ()) -> SymbolSnapshot:
        """Levels of one symbol from `/v2/gex/levels` (the only place `spot`/`candles` live)."""
        params = {"symbol": symbol}
        inc = sorted(set(include) & SINGLE_INCLUDES)
        if inc:
            params["include"] = ",".join(inc)
        env = await self._get("/v2/gex/levels", params)
        received_at = self._received_at()
        return self._parse(
            "levels payload",
            partial(
                parse_single, env, symbol, received_at=received_at, stale_after=self._stale_after
            ),
        )

    def _received_at(self) -> datetime:
        return datetime.fromtimestamp(self._wall_clock(), tz=UTC)

    async def stress_history(self, symbol: str, days: int = 7) -> StressHistory:
        """Up to 30 days of std-signed HVL, walls, spot and net GEX for one symbol."""
        env = await self._get(
            "/v2/gex/stress-history", {"symbol": symbol, "days": str(max(1, min(30, days)))}
        )
        return self._parse("stress history", partial(stress_history, env.data))

    def _parse(self, what: str, parse: Callable[[], T]) -> T:
        """Run a wire parser on a payload; whatever it raises becomes a transient FetchError."""
        try:
            return parse()
        except WireFormatError as exc:
            raise self._error(FetchErrorKind.TRANSIENT, f"unreadable {what}: {exc}") from exc
        except Exception as exc:
            # The boundary of untrusted input: a parser bug met by an odd payload must fail
            # this poll, not the cycle or `gexbot levels`.
            raise self._error(
                FetchErrorKind.TRANSIENT, f"unreadable {what} ({type(exc).__name__})"
            ) from exc

    # -- transport ------------------------------------------------------------------------

    async def _get(self, path: str, params: Mapping[str, str]) -> Envelope:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._get_once(path, params)
            except FetchError as err:
                if not err.retryable or attempt >= self._retry.attempts:
                    raise
                wait = self._wait_before_retry(err, attempt)
                if wait is None:
                    raise
                log.warning(
                    "BackQuant %s failed (%s, attempt %d/%d); retrying in %.1fs",
                    path,
                    err,
                    attempt,
                    self._retry.attempts,
                    wait,
                )
                await self._sleep(wait)

    def _wait_before_retry(self, err: FetchError, attempt: int) -> float | None:
        if err.retry_after is not None:
            # Waiting longer than max_wait inside one call would stall the poll loop; hand the
            # wait to the caller instead.
            return err.retry_after if err.retry_after <= self._retry.max_wait else None
        return backoff_delay(
            attempt, base=self._retry.base_delay, cap=self._retry.max_delay, rng=self._rng
        )

    async def _get_once(self, path: str, params: Mapping[str, str]) -> Envelope:
        try:
            resp = await self._http.get(path, params=params)
        except httpx.TimeoutException as exc:
            raise self._error(
                FetchErrorKind.TRANSIENT, f"timed out ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise self._error(
                FetchErrorKind.TRANSIENT, f"connection failed ({type(exc).__name__}: {exc})"
            ) from exc
        self._note_rate_limit(resp.headers)
        status = resp.status_code
        request_id = _printable_or_none(resp.headers.get("X-Request-ID"))
        try:
            env = parse_envelope(resp.json())
        # json raises ValueError on bad text or encoding and RecursionError on deep nesting;
        # WireFormatError is a ValueError too.
        except (ValueError, RecursionError) as exc:
            # A non-JSON body on an error status is still that error (a proxy's HTML 502 page).
            if status >= 400:
                raise self._status_error(resp, None, request_id) from exc
            raise self._error(
                FetchErrorKind.TRANSIENT,
                f"unreadable response body (HTTP {status}, {type(exc).__name__})",
                status=status,
                request_id=request_id,
            ) from exc
        request_id = _printable_or_none(env.meta.request_id) or request_id
        if 200 <= status < 300 and env.success:
            return env
        if 200 <= status < 300:
            code = printable(env.error.code, limit=64) if env.error else None
            raise self._error(
                FetchErrorKind.TRANSIENT,
                f"HTTP {status} with success=false ({code})",
                status=status,
                code=code,
                request_id=request_id,
            )
        raise self._status_error(resp, env, request_id)

    def _status_error(
        self, resp: httpx.Response, env: Envelope | None, request_id: str | None
    ) -> FetchError:
        status = resp.status_code
        # Upstream's words reach terminals, logs and chats: control characters shown, not run.
        code = printable(env.error.code, limit=64) if env and env.error else None
        said = env.error.message if env and env.error else resp.reason_phrase
        upstream_msg = printable(said, limit=300)
        where = f"HTTP {status}" + (f" {code}" if code else "")
        detail = f"{where}: {upstream_msg}" if upstream_msg else where
        now = datetime.fromtimestamp(self._wall_clock(), tz=UTC)
        retry_after = parse_retry_after(resp.headers.get("Retry-After"), now=now)
        kind, message, wait = self._classify(status, code, detail, retry_after, now)
        return self._error(
            kind, message, status=status, code=code, retry_after=wait, request_id=request_id
        )

    def _classify(
        self, status: int, code: str | None, detail: str, retry_after: float | None, now: datetime
    ) -> tuple[FetchErrorKind, str, float | None]:
        """What a refused request means: its kind, our message and how long to wait."""
        if status == 401 or code == "UNAUTHORIZED":
            return (
                FetchErrorKind.AUTH,
                f"BackQuant rejected the API key ({detail}); check GEXBOT_API_KEY",
                None,
            )
        if status == 403 or code == "FORBIDDEN":
            return (
                FetchErrorKind.FORBIDDEN,
                f"BackQuant plan does not allow this request ({detail}); check the subscription "
                "of the key in GEXBOT_API_KEY",
                None,
            )
        if status == 429 or code == "RATE_LIMIT_EXCEEDED":
            if self._rate.quota_remaining == 0:
                return (
                    FetchErrorKind.QUOTA_EXHAUSTED,
                    f"BackQuant monthly quota exhausted ({detail})",
                    retry_after,
                )
            if retry_after is None:
                reset = self._rate.reset.timestamp() if self._rate.reset else None
                retry_after = seconds_until_reset(reset, now=now)
            return FetchErrorKind.RATE_LIMITED, f"rate limited ({detail})", retry_after
        if status == 404 or code == "NOT_FOUND":
            return FetchErrorKind.NOT_FOUND, f"no data ({detail})", None
        if status in (400, 422) or code == "VALIDATION_ERROR":
            return FetchErrorKind.VALIDATION, f"request rejected ({detail})", None
        return FetchErrorKind.TRANSIENT, f"upstream error ({detail})", retry_after

    def _note_rate_limit(self, headers: httpx.Headers) -> None:
        reset = _int_header(headers, "X-RateLimit-Reset")
        limit = _int_header(headers, "X-RateLimit-Limit")
        if limit is None and reset is None and "X-Quota-Limit" not in headers:
            return
        self._rate = RateLimitState(
            limit=limit,
            remaining=_int_header(headers, "X-RateLimit-Remaining"),
            reset=_epoch(reset),
            quota_limit=_int_header(headers, "X-Quota-Limit"),
            quota_remaining=_int_header(headers, "X-Quota-Remaining"),
        )

    def _error(self, kind: FetchErrorKind, message: str, **where: Unpack[_Where]) -> FetchError:
        return FetchError(kind, self._redact(message), **where)

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text
