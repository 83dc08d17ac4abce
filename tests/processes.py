"""`gexbot sim-server` as a process of its own, as a real upstream is (tests and benches)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def sim_server(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[str]:
    """Start `gexbot sim-server --port 0 ARGS…`; yields its base URL. SIGTERM must stop it
    cleanly (exit 0)."""
    with subprocess.Popen(
        [sys.executable, "-m", "gexbot", "sim-server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=cwd,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            assert match, f"no URL in {line!r}"
            yield match.group(1)
        finally:
            proc.terminate()
            code = proc.wait(timeout=10)
    assert code == 0, f"the simulator exited {code} on SIGTERM (a clean stop is 0)"


def clean_env() -> dict[str, str]:
    """This process's environment without any GEXBOT_ setting of the machine's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GEXBOT_")}


def bot_env(tmp_path: Path, api_url: str, **settings: str) -> dict[str, str]:
    """The environment of a `gexbot run` under test: none of this machine's GEXBOT_ settings,
    the simulator at `api_url`, BTCUSDT polled every 0.5 s, SQLite and the rules in `tmp_path`;
    `settings` (GEXBOT_… names) add to or replace these."""
    return {
        **clean_env(),
        "GEXBOT_API_URL": api_url,
        "GEXBOT_API_KEY": "demo",
        "GEXBOT_SYMBOLS": "BTCUSDT",
        "GEXBOT_POLL_INTERVAL": "0.5",
        "GEXBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}",
        "GEXBOT_RULES": str(tmp_path / "rules"),
        **settings,
    }
