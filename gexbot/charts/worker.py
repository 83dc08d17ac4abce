"""The chart renderer's process: receives snapshots over a pipe, answers PNG bytes.

It imports the render function by name (`module:function`), so matplotlib is loaded here and
never in the bot's own process, where its ~170 ms renders would hold the GIL under replies.
"""

from __future__ import annotations

import importlib
import resource
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any


def resolve(target: str) -> Callable[..., bytes]:
    """`package.module:function` → the function."""
    module, _, name = target.partition(":")
    fn: Callable[..., bytes] = getattr(importlib.import_module(module), name)
    return fn


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def serve(conn: Connection, target: str) -> None:
    """Render each `(snapshot, prices)` received until the pipe closes or `None` arrives."""
    render = resolve(target)
    conn.send(("ready", None, peak_rss_mb()))
    while True:
        try:
            request: Any = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        snap, prices = request
        try:
            conn.send(("ok", render(snap, prices=prices), peak_rss_mb()))
        except Exception as exc:  # noqa: BLE001 - a bad snapshot fails one chart, not the worker
            conn.send(("error", f"{type(exc).__name__}: {exc}", peak_rss_mb()))
