"""Signals, handled in one place: SIGINT and SIGTERM only set a stop event, SIGHUP a reload."""

from __future__ import annotations

import asyncio
import contextlib
import signal


def on_signals(stop: asyncio.Event, *, reload: asyncio.Event | None = None) -> None:
    """Set `stop` on SIGINT/SIGTERM (and `reload` on SIGHUP) in the running loop."""
    loop = asyncio.get_running_loop()
    wanted = [(signal.SIGINT, stop), (signal.SIGTERM, stop)]
    if reload is not None:
        wanted.append((signal.SIGHUP, reload))
    for sig, event in wanted:
        with contextlib.suppress(NotImplementedError):  # not on every platform's loop
            loop.add_signal_handler(sig, event.set)


async def until_signal() -> None:
    """Wait for SIGINT or SIGTERM."""
    stop = asyncio.Event()
    on_signals(stop)
    await stop.wait()
