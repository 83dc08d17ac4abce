"""The simulated BackQuant API in a process of its own, as a real upstream is: its work (a
day of candles is built on a symbol's first request) then never runs on the measured loop."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator

API_KEY = "bench"


@contextlib.contextmanager
def sim_process(*, seed: int = 0, refresh: float = 30.0, speed: float = 1.0) -> Iterator[str]:
    """Start `gexbot sim-server` on a free port; yields its base URL."""
    with subprocess.Popen(
        [
            *(sys.executable, "-m", "gexbot", "sim-server", "--port", "0", "--seed", str(seed)),
            *("--api-key", API_KEY, "--rate-limit", "1000000"),
            *("--refresh", str(refresh), "--speed", str(speed)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            if match is None:
                raise RuntimeError(f"the simulator did not start: {line!r}")
            yield match.group(1)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
