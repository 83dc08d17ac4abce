"""The one way tests wait: poll a condition until a deadline, never sleep against a timeline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest


async def until(check: Callable[[], object], *, timeout: float, what: str) -> None:
    """Return as soon as `check()` is truthy; fail the test, naming `what`, after `timeout` s.

    Deadlines are generous because this machine has two loaded cores: they bound a failure,
    they do not pace a passing test.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)
