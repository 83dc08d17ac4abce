"""The command line starts at once: `--help` loads no library beyond argparse, and `check`
and `schema` load none of the chat clients, SQLAlchemy, matplotlib or NumPy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"sqlalchemy", "telegram", "slack_sdk", "matplotlib", "aiohttp", "alembic", "numpy"}
PROBE = """
import sys
from gexbot.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("LOADED", " ".join(sorted({m.split(".")[0] for m in sys.modules})), file=sys.stderr)
"""


def _loaded(*args: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEXBOT_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        check=False,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED "))
    return set(line.split()[1:])


def test_help_loads_nothing_but_the_parser() -> None:
    loaded = _loaded("--help")
    assert not loaded & (HEAVY | {"pydantic", "pydantic_settings", "rich", "httpx", "yaml"})


@pytest.mark.parametrize("command", ["check", "schema"])
def test_check_and_schema_load_no_heavy_library(command: str) -> None:
    assert not _loaded(command) & HEAVY
