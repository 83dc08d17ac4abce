"""Pacing inside the platforms' published limits, without holding up other destinations.

Each send reserves the next free slot of every limit it falls under (the platform as a whole,
its chat or channel) and sleeps until then. Reservations are taken before sleeping, so
concurrent senders on one event loop queue fairly and never burst.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

#: Telegram: 30 messages/s overall, 1/s per chat, 20/min per group (core.telegram.org/bots/faq).
# Margins: sends leave on schedule but arrive with network jitter, which must not bunch them.
TELEGRAM_GLOBAL = 1 / 28.5
TELEGRAM_PER_CHAT = 1.0
TELEGRAM_PER_GROUP = 60 / 20
#: Slack: about one message per second per channel (api.slack.com/methods/chat.postMessage).
SLACK_PER_CHANNEL = 1.05


class Pacer:
    """Spaces sends: at most one per interval for each key a send names."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}

    def reserve(self, limits: Sequence[tuple[str, float]]) -> float:
        """Book the earliest slot free under every (key, interval); seconds to wait for it."""
        now = self._clock()
        start = max([now, *(self._next.get(key, 0.0) for key, _ in limits)])
        for key, interval in limits:
            self._next[key] = start + interval
        return start - now

    async def wait(self, limits: Sequence[tuple[str, float]]) -> None:
        """Wait for the next slot free under every limit."""
        delay = self.reserve(limits)
        if delay > 0:
            await self._sleep(delay)

    def push_back(self, key: str, seconds: float) -> None:
        """The platform said "retry after": nothing more for `key` before then."""
        self._next[key] = max(self._next.get(key, 0.0), self._clock() + seconds)
