"""`GEXBOT_SOURCE=both`: BackQuant first, the venues' chains as a cross-check and a fallback.

Each poll asks BackQuant as usual. A symbol BackQuant fails (the feed down, a refused key, in
`missing`, stale) is served from the chains instead, marked with the reason (`fallback`), so
its alerts name their source and the feed warnings say so once. After a failed call BackQuant
is left alone for as long as the poll loop would have waited (a refused key: five minutes), the
chains serving meanwhile. Once a check period (a minute), one more bundle call asks BackQuant for
`positioning=std` over the venues in use and compares it with the chains' levels, beside the
poll rather than in it: what each snapshot carries as its `agreement` from the next poll on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType

from gexbot.adapters.backquant import BackQuantClient, FetchError, RateLimitState
from gexbot.adapters.chains import ChainSource
from gexbot.core.chains.crosscheck import Tolerance, cross_check
from gexbot.core.market.poll_failure import FetchErrorKind, delay_after_failure
from gexbot.core.market.snapshot import Agreement, BundleSnapshot, SymbolSnapshot, SymbolStatus

log = logging.getLogger(__name__)

#: What a fallback says BackQuant did, by the failure's kind.
_FAILED = {
    FetchErrorKind.AUTH: "refused the API key",
    FetchErrorKind.FORBIDDEN: "refused the plan",
    FetchErrorKind.RATE_LIMITED: "is rate-limiting us",
    FetchErrorKind.QUOTA_EXHAUSTED: "has no quota left this month",
}


class DualSource:
    """BackQuant with the chains behind it, with the `LevelsSource` shape."""

    def __init__(
        self,
        primary: BackQuantClient,
        chains: ChainSource,
        *,
        check_every: float,
        tolerance: Tolerance,
        interval: float,
        monotonic: Callable[[], float],
        wall_clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self._primary = primary
        self._chains = chains
        self._check_every = check_every
        self._tolerance = tolerance
        self._interval = interval
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._rng = rng
        self._failures = 0
        self._resting_until = 0.0  # monotonic: BackQuant is not asked before
        self._last_error: FetchError | None = None
        self._next_check = 0.0
        self._checking: asyncio.Task[None] | None = None
        self.agreements: dict[str, Agreement] = {}

    @property
    def primary(self) -> BackQuantClient:
        """BackQuant's client (the history endpoints are BackQuant's alone)."""
        return self._primary

    @property
    def rate_limit(self) -> RateLimitState:
        """BackQuant's rate-limit and quota state (the chains have none)."""
        return self._primary.rate_limit

    async def bundle(
        self,
        symbols: Iterable[str],
        include: Iterable[str] = (),
        exchanges: Sequence[str] | None = None,
    ) -> BundleSnapshot:
        """Every symbol, from BackQuant where it serves it and from the chains where not;
        raises BackQuant's error only when the chains cannot stand in for any symbol."""
        wanted = tuple(dict.fromkeys(symbols))
        include = tuple(include)
        now_m = self._monotonic()
        asking = now_m >= self._resting_until
        checking = asking and self._check_every > 0 and now_m >= self._next_check
        if checking and (self._checking is None or self._checking.done()):
            # Beside the poll, not in it: its answer shows from the next poll on, and the
            # poll's alerts are not held up by a second BackQuant call and the venues.
            self._next_check = now_m + self._check_every
            self._checking = asyncio.create_task(self._cross_check(wanted))
        primary = await self._ask(wanted, include, exchanges) if asking else None
        why = self._why_not(wanted, primary)
        chains = await self._chain_bundle([s for s in wanted if s in why]) if why else None
        snaps: dict[str, SymbolSnapshot] = {}
        for sym in wanted:
            snap = primary.symbols.get(sym) if primary is not None else None
            stand_in = chains.symbols.get(sym) if chains is not None else None
            if sym in why and stand_in is not None:
                if stand_in.usable:
                    snap = replace(stand_in, fallback=why[sym])
                elif snap is None:  # neither has it: say both
                    chains_say = stand_in.unavailable or "the chains have no data for it"
                    snap = replace(stand_in, unavailable=f"BackQuant {why[sym]}, {chains_say}")
            if snap is not None:
                snaps[sym] = snap
        if not any(s.usable for s in snaps.values()) and primary is None:
            raise self._last_error or FetchError(FetchErrorKind.TRANSIENT, "no source answered")
        received = primary.received_at if primary is not None else None
        bundle = BundleSnapshot(
            received_at=received or datetime.fromtimestamp(self._wall_clock(), tz=UTC),
            symbols=MappingProxyType(snaps),
            upstream_at=primary.upstream_at if primary is not None else None,
            request_ids=primary.request_ids if primary is not None else (),
            api_version=primary.api_version if primary is not None else None,
        )
        return self.with_agreements(bundle)

    async def checked(self) -> None:
        """Wait for the cross-check in flight, if any (tests, and a clean stop)."""
        if self._checking is not None:
            await asyncio.shield(self._checking)

    def with_agreements(self, bundle: BundleSnapshot) -> BundleSnapshot:
        """`bundle` with each symbol's latest cross-check (after `checked`, for one look)."""
        snaps = {
            sym: replace(snap, agreement=agreement)
            if (agreement := self.agreements.get(sym)) is not None
            else snap
            for sym, snap in bundle.symbols.items()
        }
        return replace(bundle, symbols=MappingProxyType(snaps))

    async def aclose(self) -> None:
        """Stop a cross-check in flight."""
        if self._checking is not None and not self._checking.done():
            self._checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checking

    async def levels(self, symbol: str, include: Iterable[str] = ()) -> SymbolSnapshot:
        """One symbol (chat's `/levels`), by the same rules as the bundle."""
        bundle = await self.bundle([symbol], include)
        return bundle.symbols[symbol]

    async def _ask(
        self, wanted: Sequence[str], include: Sequence[str], exchanges: Sequence[str] | None
    ) -> BundleSnapshot | None:
        try:
            bundle = await self._primary.bundle(wanted, include, exchanges)
        except FetchError as exc:
            self._failures += 1
            wait = delay_after_failure(
                exc.kind,
                retry_after=exc.retry_after,
                failures=self._failures,
                interval=self._interval,
                rng=self._rng,
            )
            self._resting_until = self._monotonic() + wait
            if self._last_error is None or self._last_error.kind is not exc.kind:
                log.warning("BackQuant failed (%s); the chains stand in", exc)
            self._last_error = exc
            return None
        if self._last_error is not None:
            log.info("BackQuant answers again")
        self._failures, self._last_error = 0, None
        return bundle

    def _why_not(self, wanted: Sequence[str], primary: BundleSnapshot | None) -> Mapping[str, str]:
        """The symbols BackQuant did not serve usably, each with what BackQuant did."""
        if primary is None:
            error = self._last_error
            what = "is down"
            if error is not None:
                what = _FAILED.get(error.kind, what)
                what += f" (HTTP {error.status})" if error.status else ""
            return dict.fromkeys(wanted, what)
        out = {}
        for sym in wanted:
            snap = primary.symbols.get(sym)
            if snap is None or snap.status is SymbolStatus.MISSING:
                out[sym] = "has no data for it (missing)"
            elif snap.status is SymbolStatus.STALE:
                out[sym] = "serves stale data for it"
        return out

    async def _chain_bundle(self, symbols: Sequence[str]) -> BundleSnapshot | None:
        try:
            return await self._chains.bundle(symbols)
        except FetchError as exc:
            log.debug("the chains cannot stand in: %s", exc)
            return None

    async def _cross_check(self, wanted: Sequence[str]) -> None:
        """BackQuant's std levels over the venues in use against the chains'; a failed side
        leaves the last agreement standing."""
        venues = [v.value for v in self._chains.venues]
        try:
            theirs, ours = await asyncio.gather(
                self._primary.bundle(wanted, ("max_pain",), venues, positioning="std"),
                self._chains.bundle(wanted),
            )
        except FetchError as exc:
            log.debug("cross-check skipped: %s", exc)
            return
        except Exception:  # a task nobody awaits: a defect is logged here, never lost
            log.exception("cross-check failed")
            return
        at = datetime.fromtimestamp(self._wall_clock(), tz=UTC)
        for sym in wanted:
            bq, ch = theirs.symbols.get(sym), ours.symbols.get(sym)
            if bq is None or ch is None:
                continue
            agreement = cross_check(
                bq, ch, prior=self.agreements.get(sym), at=at, tolerance=self._tolerance
            )
            if agreement is not None:
                self.agreements[sym] = agreement
