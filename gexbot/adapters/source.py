"""What the poll loop, chat and the CLI read levels from: BackQuant's client or the chains."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from gexbot.adapters.backquant import RateLimitState
from gexbot.core.market.snapshot import BundleSnapshot, SymbolSnapshot


class LevelsSource(Protocol):
    """A source of levels; its failures are `FetchError`s."""

    @property
    def rate_limit(self) -> RateLimitState:
        """The last rate-limit and quota state seen (empty where the source has none)."""
        ...

    async def bundle(
        self,
        symbols: Iterable[str],
        include: Iterable[str] = (),
        exchanges: Sequence[str] | None = None,
    ) -> BundleSnapshot:
        """Every symbol's snapshot, in one refresh."""
        ...

    async def levels(self, symbol: str, include: Iterable[str] = ()) -> SymbolSnapshot:
        """One symbol's snapshot (chat's `/levels`, the charts)."""
        ...
