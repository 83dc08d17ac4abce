"""Render functions that misbehave, run inside the chart renderer's process by name."""

from __future__ import annotations

import os
import time
from typing import Any

from gexbot.core.market.snapshot import SymbolSnapshot


def png_of_symbol(snap: SymbolSnapshot, *, prices: Any = ()) -> bytes:
    """A fake PNG naming the symbol, the number of levels and the renderer's pid."""
    return f"PNG {snap.symbol} {len(snap.levels)} {len(prices)} {os.getpid()}".encode()


def hang_on_eth(snap: SymbolSnapshot, *, prices: Any = ()) -> bytes:
    """Hangs (a stuck render) for ETHUSDT; draws the others."""
    if snap.symbol == "ETHUSDT":
        # Not a wait in a test: the render itself never returns; the test waits on the
        # renderer's timeout, and the process is killed long before this ends.
        time.sleep(3600)
    return png_of_symbol(snap, prices=prices)


def crash_on_sol(snap: SymbolSnapshot, *, prices: Any = ()) -> bytes:
    """Kills its own process (a segfault in a native library) for SOLUSDT."""
    if snap.symbol == "SOLUSDT":
        os._exit(139)
    return png_of_symbol(snap, prices=prices)


def fail_on_hype(snap: SymbolSnapshot, *, prices: Any = ()) -> bytes:
    """Raises for HYPEUSDT, as a render bug would."""
    if snap.symbol == "HYPEUSDT":
        raise ValueError("no levels to draw")
    return png_of_symbol(snap, prices=prices)
