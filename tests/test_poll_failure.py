"""The poll-failure delay policy (pure, table-driven)."""

from __future__ import annotations

import random

import pytest

from gexbot.core.market.poll_failure import FetchErrorKind, delay_after_failure

K = FetchErrorKind


@pytest.mark.parametrize(
    ("kind", "retry_after", "failures", "interval", "low", "high"),
    [
        (K.AUTH, None, 1, 30.0, 300.0, 300.0),  # a wrong key will not fix itself
        (K.AUTH, None, 1, 60.0, 600.0, 600.0),  # ten intervals when those are longer
        (K.FORBIDDEN, None, 3, 1.0, 300.0, 300.0),
        (K.RATE_LIMITED, 12.0, 1, 30.0, 30.0, 30.0),  # never faster than the interval
        (K.RATE_LIMITED, 45.0, 1, 30.0, 45.0, 45.0),  # Retry-After honoured
        (K.RATE_LIMITED, None, 1, 30.0, 30.0, 30.0),
        (K.QUOTA_EXHAUSTED, 86_400.0 * 9, 1, 30.0, 3600.0, 3600.0),  # clamped to an hour
        (K.TRANSIENT, None, 1, 30.0, 15.0, 30.0),  # full jitter below the ceiling
        (K.TRANSIENT, None, 2, 30.0, 30.0, 60.0),
        (K.TRANSIENT, None, 9, 30.0, 60.0, 120.0),  # capped at four intervals
        (K.NOT_FOUND, None, 1, 30.0, 30.0, 30.0),
        (K.VALIDATION, None, 4, 2.0, 2.0, 2.0),
    ],
)
def test_the_delay_after_a_failed_poll(
    kind: FetchErrorKind,
    retry_after: float | None,
    failures: int,
    interval: float,
    low: float,
    high: float,
) -> None:
    rng = random.Random(7)
    for _ in range(50):
        delay = delay_after_failure(
            kind, retry_after=retry_after, failures=failures, interval=interval, rng=rng
        )
        assert low <= delay <= high
