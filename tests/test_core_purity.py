"""The core does no I/O: every module under gexbot/core imports only from an allow-list and
calls no clock, randomness, file, environment or console function.

An allow-list, not a deny-list: a new dependency of the core has to be named here on purpose.
Relative imports are resolved first, so `from ..store import tables` is `gexbot.store`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "gexbot" / "core"

#: Pure standard-library modules, the two parsing libraries, and the core itself.
ALLOWED_IMPORTS = frozenset(
    {
        "__future__",
        "abc",
        "bisect",
        "collections",
        "collections.abc",
        "dataclasses",
        "datetime",
        "decimal",
        "difflib",
        "email.utils",  # HTTP-date parsing (Retry-After), no I/O
        "enum",
        "functools",
        "hashlib",  # the webhook delivery id: a digest, no I/O
        "heapq",
        "html",
        "itertools",
        "json",
        "math",
        "numbers",
        "numpy",  # the replay's columns: arithmetic on arrays, no I/O
        "numpy.typing",
        "operator",
        "random",  # for the `random.Random` type of injected generators; calls are refused
        "re",
        "statistics",
        "string",
        "textwrap",
        "types",
        "typing",
        "unicodedata",
        "pydantic",
        "yaml",
    }
)
ALLOWED_PACKAGES = ("gexbot.core",)
#: Calls that read the clock, draw randomness, touch files or the console, or run code.
FORBIDDEN_CALLS = frozenset(
    {
        "open",
        "print",
        "input",
        "exec",
        "eval",
        "compile",
        "__import__",
        "breakpoint",
        "datetime.now",
        "datetime.utcnow",
        "datetime.today",
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "date.today",
        "datetime.date.today",
    }
)
#: Modules whose functions must not be called at all (the generator comes in as an argument).
FORBIDDEN_CALL_MODULES = ("random.",)


def _resolve(module: str, level: int, name: str | None) -> str:
    """The absolute module of `from <level dots><name> import …` inside `module`."""
    if level == 0:
        return name or ""
    base = module.split(".")[:-level]
    return ".".join([*base, name] if name else base)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def _allowed(name: str) -> bool:
    return name in ALLOWED_IMPORTS or any(
        name == p or name.startswith(p + ".") for p in ALLOWED_PACKAGES
    )


def problems(source: str, module: str) -> list[str]:
    """Every import outside the allow-list and every forbidden call in `source`."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if not _allowed(a.name)]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node.level, node.module)
            if not _allowed(target):
                found.append(f"from {target} import …")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name and (name in FORBIDDEN_CALLS or name.startswith(FORBIDDEN_CALL_MODULES)):
                found.append(f"call {name}()")
    return found


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_does_no_io(path: Path) -> None:
    module = f"gexbot.core.{path.stem}"
    assert problems(path.read_text(encoding="utf-8"), module) == []


@pytest.mark.parametrize(
    ("planted", "reported"),
    [
        ("from ..store import tables", "from gexbot.store import …"),
        ("from .. import settings", "from gexbot import …"),
        ("import threading", "import threading"),
        ("import urllib.request", "import urllib.request"),
        ("from gexbot.adapters import backquant", "from gexbot.adapters import …"),
        ("from datetime import datetime\nx = datetime.now()", "call datetime.now()"),
        ("import datetime\nx = datetime.datetime.now()", "call datetime.datetime.now()"),
        ("x = open('f')", "call open()"),
        ("import random\nx = random.random()", "call random.random()"),
        ("import random\nr = random.Random()", "call random.Random()"),
    ],
)
def test_the_check_itself_catches_each_kind_of_impurity(planted: str, reported: str) -> None:
    assert reported in problems(planted, "gexbot.core.planted")


def test_the_check_lets_pure_code_through() -> None:
    source = (
        "from __future__ import annotations\nimport random\nfrom . import wire\n"
        "from .snapshot import Level\n"
        "def f(rng: random.Random) -> float:\n    return rng.random()\n"
    )
    assert problems(source, "gexbot.core.planted") == []
