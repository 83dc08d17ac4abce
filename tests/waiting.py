"""The one way tests wait: poll a condition until a deadline, never sleep against a timeline.

Deadlines are generous because this machine has two loaded cores: they bound a failure, they do
not pace a passing test. A sleep left in a test is an observation window (nothing may happen
within it), and says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


async def until(
    check: Callable[[], object], *, timeout: float, what: str, interval: float = 0.02
) -> None:
    """Return as soon as `check()` is truthy; fail the test, naming `what`, after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


async def eventually(
    attempt: Callable[[], Awaitable[T | None]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
) -> T:
    """The first result of `attempt()` that is not None (an attempt may also raise
    `ConnectionError` or `OSError`, as a port that is not open yet does: it is retried)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await attempt()
        except OSError:
            result = None
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


def until_sync(
    check: Callable[[], object], *, timeout: float, what: str, interval: float = 0.05
) -> None:
    """`until` for a test without an event loop (it drives subprocesses)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
