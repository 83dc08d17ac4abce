"""`--profile` for every benchmark: the figures as usual, then where the time went.

The profile covers the benchmark's main thread (the event loop and what runs on it); work
handed to worker threads or processes shows as the wait for it.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
from collections.abc import Iterator
from contextlib import contextmanager

TOP = 20


@contextmanager
def profile_if_asked() -> Iterator[None]:
    """Profile the block when `--profile` is on the command line (removed before argparse)."""
    if "--profile" not in sys.argv:
        yield
        return
    sys.argv.remove("--profile")
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(TOP)
        stats.sort_stats("tottime").print_stats(TOP)
        print(f"\n--- profile: top {TOP} by cumulative, then by own time ---")
        print(out.getvalue())
