"""The core does no I/O: no module under gexbot/core imports an I/O or clock library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "gexbot" / "core"
FORBIDDEN = {
    "asyncio",
    "httpx",
    "aiohttp",
    "sqlalchemy",
    "alembic",
    "os",
    "time",
    "socket",
    "subprocess",
    "telegram",
    "slack_sdk",
    "slack_bolt",
    "requests",
    "pathlib",
    "logging",
    "rich",
    "gexbot.adapters",
    "gexbot.store",
    "gexbot.sim",
    "gexbot.app",
    "gexbot.settings",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_no_io(path: Path) -> None:
    bad = sorted(n for n in _imports(path) if _forbidden(n))
    assert not bad, f"{path.name} imports {bad}"


def test_the_check_itself_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import os\nfrom time import monotonic\nfrom gexbot.core import wire\n")
    assert sorted(n for n in _imports(sample) if _forbidden(n)) == ["os", "time"]
