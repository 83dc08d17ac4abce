"""What a failed poll means, and how long to wait before the next one (pure)."""

from __future__ import annotations

import random
from enum import StrEnum

from gexbot.core.market.backoff import backoff_delay

#: The least a poller waits after BackQuant refused the key or the plan: it will not fix itself.
AUTH_WAIT = 300.0
#: The most a Retry-After (or a quota reset) is waited out in one go.
MAX_RATE_WAIT = 3600.0


class FetchErrorKind(StrEnum):
    """What a failed request means for the caller."""

    AUTH = "auth"  # 401: the key is wrong; retrying will not help
    FORBIDDEN = "forbidden"  # 403: the key is fine, the plan does not allow this
    NOT_FOUND = "not_found"  # 404: no cache for the symbol
    VALIDATION = "validation"  # 400/422: our request is wrong
    RATE_LIMITED = "rate_limited"  # 429 burst: wait `retry_after`
    QUOTA_EXHAUSTED = "quota_exhausted"  # 429 with the monthly quota at zero: do not sleep on it
    TRANSIENT = "transient"  # 5xx, timeouts, connection errors, unreadable bodies


def delay_after_failure(
    kind: FetchErrorKind,
    *,
    retry_after: float | None,
    failures: int,
    interval: float,
    rng: random.Random,
) -> float:
    """Seconds until the next poll after `failures` failed polls in a row, the last of `kind`.

    Auth and plan failures wait at least five minutes (ten intervals when those are longer);
    rate limits wait their Retry-After, clamped to [interval, 1 h]; transient failures back off
    exponentially with jitter up to four intervals; anything else waits one interval.
    """
    if kind in (FetchErrorKind.AUTH, FetchErrorKind.FORBIDDEN):
        return max(10 * interval, AUTH_WAIT)
    if kind in (FetchErrorKind.RATE_LIMITED, FetchErrorKind.QUOTA_EXHAUSTED):
        wait = retry_after if retry_after is not None else interval
        return max(interval, min(wait, MAX_RATE_WAIT))
    if kind is FetchErrorKind.TRANSIENT:
        return backoff_delay(failures, base=interval, cap=4 * interval, rng=rng)
    return interval
