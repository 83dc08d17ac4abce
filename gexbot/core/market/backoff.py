"""Backoff and `Retry-After` arithmetic (pure: the clock and the RNG come in as arguments)."""

from __future__ import annotations

import math
import random
from datetime import datetime
from email.utils import parsedate_to_datetime


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before retry number `attempt` (1-based): capped exponential, full jitter.

    Full jitter (a uniform draw below the exponential ceiling) keeps several bots that failed
    together from retrying together.
    """
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return rng.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """`Retry-After` as seconds from `now`: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - now).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def seconds_until_reset(reset_epoch: float | None, *, now: datetime) -> float | None:
    """Seconds until an `X-RateLimit-Reset` Unix timestamp, never negative."""
    if reset_epoch is None:
        return None
    return max(0.0, reset_epoch - now.timestamp())
