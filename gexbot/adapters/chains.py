"""Levels from the venues' public option chains: one client per venue, every venue fetched at
once, at most one refresh per `min_interval` (BackQuant's 30 s cadence), no key.

A venue that is down, refuses (429, 403) or answers something that is not a chain is left out of
that refresh with one warning per episode, and one line when it is back; it never fails the
others. A symbol no venue lists options for (HYPE today) is not available, never a level of 0.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import httpx

from gexbot import USER_AGENT
from gexbot.adapters.backquant import FetchError, RateLimitState
from gexbot.core.chains.contracts import ChainError, Contracts, merge
from gexbot.core.chains.levels import PutWalls, chain_levels
from gexbot.core.chains.venues import (
    Book,
    Venue,
    coin_of,
    parse_bybit,
    parse_deribit,
    parse_okx,
)
from gexbot.core.market.poll_failure import FetchErrorKind
from gexbot.core.market.snapshot import BundleSnapshot, SymbolSnapshot, SymbolStatus
from gexbot.core.present.format import printable

log = logging.getLogger(__name__)

MIN_INTERVAL = 30.0


class ChainSource:
    """The venues' chains as a levels source with the BackQuant client's shape (`bundle`,
    `levels`, `rate_limit`), so the poll loop, chat and the CLI take either."""

    def __init__(
        self,
        clients: Mapping[Venue, httpx.AsyncClient],
        *,
        wall_clock: Callable[[], float],
        monotonic: Callable[[], float],
        stale_after: float,
        min_interval: float = MIN_INTERVAL,
        puts_by: PutWalls = PutWalls.NEGATIVE,
    ) -> None:
        self._puts_by = puts_by
        self._stale_after = stale_after
        self._clients = dict(clients)
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._min_interval = min_interval
        self._held: dict[str, tuple[float, SymbolSnapshot]] = {}  # (monotonic, snapshot)
        self._last: tuple[tuple[str, ...], BundleSnapshot] | None = None
        self._failing: set[tuple[Venue, str]] = set()

    @property
    def venues(self) -> tuple[Venue, ...]:
        """The venues asked, in order."""
        return tuple(self._clients)

    @property
    def rate_limit(self) -> RateLimitState:
        """The venues publish no quota headers gexbot reads: always empty."""
        return RateLimitState()

    async def bundle(
        self,
        symbols: Iterable[str],
        include: Iterable[str] = (),  # noqa: ARG002 - a chain gives every section at once
        exchanges: Sequence[str] | None = None,  # noqa: ARG002 - the venues are the setting
    ) -> BundleSnapshot:
        """Every symbol's levels from the chains. A symbol refreshed less than `min_interval`
        ago is served as held, whoever asks (the poll loop, chat's `/levels`, a chart): the
        venues are asked for it at most once a window."""
        wanted = tuple(dict.fromkeys(symbols))
        now_m = self._monotonic()
        due = [
            s
            for s in wanted
            if s not in self._held or now_m - self._held[s][0] >= self._min_interval
        ]
        if not due and self._last is not None and self._last[0] == wanted:
            return self._last[1]
        computed = await asyncio.gather(*(self._symbol(s) for s in due))
        if due and not any(answered for _, answered in computed):
            raise FetchError(FetchErrorKind.TRANSIENT, "no venue answered with a chain")
        for sym, (snap, _) in zip(due, computed, strict=True):
            self._held[sym] = (now_m, snap)
        received = datetime.fromtimestamp(self._wall_clock(), tz=UTC)
        snaps = {s: self._held[s][1] for s in wanted}
        bundle = BundleSnapshot(received_at=received, symbols=MappingProxyType(snaps))
        self._last = (wanted, bundle)
        return bundle

    async def levels(self, symbol: str, include: Iterable[str] = ()) -> SymbolSnapshot:
        """One symbol (chat's `/levels`): from the current window's refresh when there is one."""
        bundle = await self.bundle([symbol], include)
        return bundle.symbols[symbol]

    async def _symbol(self, symbol: str) -> tuple[SymbolSnapshot, bool]:
        """The symbol's snapshot, and whether any venue answered at all."""
        coin = coin_of(symbol)
        fetched = await asyncio.gather(*(self._book(v, coin) for v in self._clients))
        books = [b for b in fetched if b is not None]
        spot = next((b.index for b in books if b.index), None)
        listed = [b for b in books if b.book.contracts]
        if not listed or spot is None:
            asked = ", ".join(v.display for v in self._clients)
            if not books:
                reason = f"no venue answered for {coin} ({asked})"
            elif not listed:
                reason = f"no listed options for {coin} on {asked}"
            else:
                reason = f"no index price for {coin} from {asked}"
            snap = SymbolSnapshot(
                symbol=symbol,
                status=SymbolStatus.MISSING,
                unavailable=f"not available from the chains ({reason})",
            )
            return snap, bool(books)
        at = max((b.book.at for b in listed if b.book.at), default=self._wall_clock())
        snap = await asyncio.to_thread(self._compute, symbol, listed, spot, at)
        if self._wall_clock() - at > self._stale_after:  # the venues' own data time
            snap = replace(snap, status=SymbolStatus.STALE)
        return snap, True

    def _compute(
        self, symbol: str, listed: list[_Fetched], spot: float, at: float
    ) -> SymbolSnapshot:
        """The levels from the venues' books (in a worker thread: tens of milliseconds of
        numpy that would otherwise hold up the event loop, and with it every delivery)."""
        contracts = merge([(b.book.venue.value, b.book.contracts) for b in listed], now=at)
        now = datetime.fromtimestamp(at, tz=UTC)
        return chain_levels(symbol, contracts, spot=spot, now=now, puts_by=self._puts_by).snapshot

    async def _book(self, venue: Venue, coin: str) -> _Fetched | None:
        """One venue's book for `coin`, or None (left out of this refresh, logged once)."""
        client = self._clients[venue]
        now = self._wall_clock()
        try:
            if venue is Venue.DERIBIT:
                # Linear (USDC-settled) options are listed under currency USDC: SOL's, for one.
                currency = coin if coin in ("BTC", "ETH") else "USDC"
                book_json, index_json = await asyncio.gather(
                    _get(
                        client,
                        "/api/v2/public/get_book_summary_by_currency",
                        {"currency": currency, "kind": "option"},
                    ),
                    _get(
                        client,
                        "/api/v2/public/get_index_price",
                        {"index_name": f"{coin.lower()}_usd"},
                    ),
                )
                if _deribit_unlisted(book_json):
                    return self._ok(venue, coin, Book(venue, coin, Contracts.empty()), None)
                book = await asyncio.to_thread(parse_deribit, book_json, coin, now=now)
                index = _path_number(index_json, "result", "index_price")
            elif venue is Venue.BYBIT:
                tickers = await _get(
                    client, "/v5/market/tickers", {"category": "option", "baseCoin": coin}
                )
                book = await asyncio.to_thread(parse_bybit, tickers, coin, now=now)
                index = _bybit_index(tickers)
            else:
                family = f"{coin}-USD"
                summary, oi, index_json = await asyncio.gather(
                    _get(client, "/api/v5/public/opt-summary", {"instFamily": family}),
                    _get(
                        client,
                        "/api/v5/public/open-interest",
                        {"instType": "OPTION", "instFamily": family},
                    ),
                    _get(client, "/api/v5/market/index-tickers", {"instId": family}),
                )
                if _okx_unlisted(summary):
                    return self._ok(venue, coin, Book(venue, coin, Contracts.empty()), None)
                book = await asyncio.to_thread(parse_okx, summary, oi, coin, now=now)
                index = _okx_index(index_json)
        except (httpx.HTTPError, ChainError, ValueError) as exc:
            self._failed(venue, coin, exc)
            return None
        return self._ok(venue, coin, book, index)

    def _ok(self, venue: Venue, coin: str, book: Book, index: float | None) -> _Fetched:
        if (venue, coin) in self._failing:
            self._failing.discard((venue, coin))
            log.info("%s answers for %s again", venue.display, coin)
        if book.skipped:
            log.debug("%s %s: %d unreadable rows left out", venue.display, coin, book.skipped)
        return _Fetched(book, index)

    def _failed(self, venue: Venue, coin: str, exc: Exception) -> None:
        if (venue, coin) not in self._failing:
            self._failing.add((venue, coin))
            log.warning(
                "%s chain for %s left out (%s); the other venues go on",
                venue.display,
                coin,
                printable(_describe(exc), limit=200),
            )


@dataclass(frozen=True, slots=True)
class _Fetched:
    book: Book
    index: float | None


async def _get(client: httpx.AsyncClient, path: str, params: Mapping[str, str]) -> Any:
    resp = await client.get(path, params=params)
    if resp.status_code in (403, 429):
        raise ChainError(f"HTTP {resp.status_code}: the venue's rate limit")
    if resp.status_code >= 400 and resp.status_code != 400:  # 400 carries the venue's error
        raise ChainError(f"HTTP {resp.status_code}")
    try:
        return resp.json()
    except (ValueError, RecursionError) as exc:
        raise ChainError(f"HTTP {resp.status_code}, not JSON") from exc


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.HTTPError):
        return f"connection failed: {type(exc).__name__}"
    return str(exc)


def _deribit_unlisted(payload: Any) -> bool:
    # JSON-RPC's invalid-params answer to a currency Deribit does not list (assumed).
    error = payload.get("error") if isinstance(payload, Mapping) else None
    return isinstance(error, Mapping) and error.get("code") == -32602


def _okx_unlisted(payload: Any) -> bool:
    return isinstance(payload, Mapping) and str(payload.get("code")) == "51001"


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 1e12 else None


def _path_number(payload: Any, *path: str) -> float | None:
    node = payload
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return _finite(node)


def _bybit_index(payload: Any) -> float | None:
    rows = payload.get("result", {}).get("list") if isinstance(payload, Mapping) else None
    if isinstance(rows, list):
        for row in rows:
            if isinstance(row, Mapping) and (index := _finite(row.get("indexPrice"))):
                return index
    return None


def _okx_index(payload: Any) -> float | None:
    rows = payload.get("data") if isinstance(payload, Mapping) else None
    if isinstance(rows, list) and rows and isinstance(rows[0], Mapping):
        return _finite(rows[0].get("idxPx"))
    return None


def build_venue_clients(
    urls: Mapping[Venue, str], *, timeout: float = 10.0
) -> dict[Venue, httpx.AsyncClient]:
    """One httpx client per venue (keyless; the User-Agent names gexbot)."""
    return {
        venue: httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
        )
        for venue, url in urls.items()
    }
