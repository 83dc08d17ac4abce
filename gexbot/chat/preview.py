"""How often a new personal alert would have fired: the creation reply's preview.

The alert is replayed through the same column replay as `gexbot replay`, over the last 7 days
of the store's history, or BackQuant's stress history when the store holds less (and the alert
needs only the levels stress history has). A symbol's history is kept for a minute, so a
trader trying three variants in a row waits for one load.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from gexbot.adapters.backquant import BackQuantClient, FetchError
from gexbot.core.language.model import Rule
from gexbot.core.present.format import fmt_age
from gexbot.core.replay.columns import replay_columns
from gexbot.core.replay.history import SymbolHistory
from gexbot.core.replay.result import STRESS_HISTORY_LEVELS, levels_used
from gexbot.store.snapshots import load_history

log = logging.getLogger(__name__)

DAYS = 7
KEEP_FOR = 60.0  # seconds a loaded history serves further previews
SLACK = timedelta(hours=1)  # the store "holds 7 days" when its oldest row is at most this late


@dataclass(frozen=True, slots=True)
class History:
    """One symbol's history for previews, and where it came from."""

    source: str  # "stored history" | "BackQuant stress history"
    columns: SymbolHistory
    loaded: float  # monotonic


class AlertPreview:
    """Replays one rule over recent history and says how often it fired, in one line."""

    def __init__(
        self,
        engine: Engine,
        client: BackQuantClient | None,
        *,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float],
    ) -> None:
        self._engine = engine
        self._client = client
        self._clock = clock
        self._monotonic = monotonic
        self._cache: dict[tuple[str, bool], History] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def __call__(self, rule: Rule) -> str:
        """`Over the last 7 days (… stored history) it would have fired 3 times, last …`."""
        symbol = (rule.symbols or ("",))[0]
        stress_ok = levels_used(rule) <= STRESS_HISTORY_LEVELS
        history = await self._history(symbol, stress_ok=stress_ok)
        if not len(history.columns):
            if stress_ok:
                return "No preview: there is no history to replay yet."
            return (
                "No preview: the store holds no history yet, and BackQuant's stress history has "
                "only HVL, call resistance and put support."
            )
        result = await asyncio.to_thread(replay_columns, [rule], {symbol: history.columns})
        start, end = result.start or self._clock(), result.end or self._clock()
        span = _span((end - start).total_seconds())
        period = f"{start:%b %d %H:%M} – {end:%b %d %H:%M} UTC, {span} of {history.source}"
        fired = [a for a in result.alerts if a.reason.sends]
        if not fired:
            return f"Preview ({period}): it would not have fired."
        if rule.once:
            return f"Preview ({period}): it would have fired on {fired[0].at:%b %d %H:%M} UTC."
        times = "once" if len(fired) == 1 else f"{len(fired)} times"
        last = f"{fired[-1].at:%b %d %H:%M} UTC"
        return f"Preview ({period}): it would have fired {times}, last on {last}."

    async def _history(self, symbol: str, *, stress_ok: bool) -> History:
        key = (symbol, stress_ok)
        lock = self._locks.setdefault(symbol, asyncio.Lock())
        async with lock:
            held = self._cache.get(key)
            if held is not None and self._monotonic() - held.loaded < KEEP_FOR:
                return held
            held = await self._load(symbol, stress_ok=stress_ok)
            self._cache[key] = held
            return held

    async def _load(self, symbol: str, *, stress_ok: bool) -> History:
        now = self._clock()
        since = now - timedelta(days=DAYS)

        def stored() -> SymbolHistory:
            with self._engine.connect() as conn:
                return SymbolHistory.of_snapshots(symbol, load_history(conn, symbol, since=since))

        held = await asyncio.to_thread(stored)
        full = len(held) > 0 and held.times[0] <= since + SLACK
        if full or not stress_ok or self._client is None:  # None: the chains have no history
            return History("stored history", held, self._monotonic())
        try:
            stress = await self._client.stress_history(symbol, DAYS)
        except FetchError as exc:
            log.warning("stress history for the preview of %s failed: %s", symbol, exc)
            return History("stored history", held, self._monotonic())
        return History(
            "BackQuant stress history", SymbolHistory.of_stress(symbol, stress), self._monotonic()
        )


def _span(seconds: float) -> str:
    """`7 days`, `2.5 days`, or shorter spans as an age (`5h10m`)."""
    days = seconds / 86400.0
    if days < 1:
        return fmt_age(seconds)
    return f"{round(days)} days" if abs(days - round(days)) < 0.05 else f"{days:.1f} days"
