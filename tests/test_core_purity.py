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
#: Builtins that touch files or the console, or run code.
FORBIDDEN_BUILTINS = frozenset(
    {"open", "print", "input", "exec", "eval", "compile", "__import__", "breakpoint"}
)
#: Fully qualified names that read a clock; referring to one at all (a call, `f = D.now`,
#: `getattr(dt.datetime, "now")`) is refused, however it was imported.
CLOCKS = frozenset(
    {
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
        "time.time",
        "time.time_ns",
        "time.monotonic",
        "time.monotonic_ns",
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


def _aliases(tree: ast.AST, module: str) -> dict[str, str]:
    """Each local name an import binds, to the qualified name it stands for
    (`import datetime as dt` → dt: datetime; `from datetime import datetime as D` → D:
    datetime.datetime)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    names[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node.level, node.module)
            for a in node.names:
                names[a.asname or a.name] = f"{target}.{a.name}"
    return names


def _qualified(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """The qualified name `node` refers to, imports resolved; None when it is not a plain
    (possibly getattr'd) dotted name."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        inner = _qualified(node.value, aliases)
        return f"{inner}.{node.attr}" if inner else None
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "getattr"
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
    ):
        inner = _qualified(node.args[0], aliases)
        return f"{inner}.{node.args[1].value}" if inner else None
    return None


def _allowed(name: str) -> bool:
    return name in ALLOWED_IMPORTS or any(
        name == p or name.startswith(p + ".") for p in ALLOWED_PACKAGES
    )


def clock_reads(source: str, module: str) -> list[str]:
    """Every reference to a clock, and every unseeded `random.Random()`, in `source`."""
    tree = ast.parse(source)
    aliases = _aliases(tree, module)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute | ast.Call) or (
            isinstance(node, ast.Name) and node.id in aliases
        ):
            name = _qualified(node, aliases)
            if name in CLOCKS:
                found.append(f"reads {name}")
        if (
            isinstance(node, ast.Call)
            and not node.args
            and not node.keywords
            and _qualified(node.func, aliases) == "random.Random"
        ):
            found.append("unseeded random.Random()")
    return sorted(set(found))


def problems(source: str, module: str) -> list[str]:
    """Every import outside the allow-list, every clock read and every forbidden call in
    `source`."""
    tree = ast.parse(source)
    aliases = _aliases(tree, module)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if not _allowed(a.name)]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node.level, node.module)
            if not _allowed(target):
                found.append(f"from {target} import …")
        elif isinstance(node, ast.Call):
            name = _qualified(node.func, aliases)
            if (name in FORBIDDEN_BUILTINS and name not in aliases) or (
                name and name.startswith(FORBIDDEN_CALL_MODULES)
            ):
                found.append(f"call {name}()")
    return found + clock_reads(source, module)


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_does_no_io(path: Path) -> None:
    # A package's `__init__` keeps its name, so that relative imports resolve from the package.
    module = ".".join(("gexbot", "core", *path.relative_to(CORE).with_suffix("").parts))
    assert problems(path.read_text(encoding="utf-8"), module) == []


@pytest.mark.parametrize(
    ("planted", "reported"),
    [
        ("from ..store import tables", "from gexbot.store import …"),
        ("from .. import settings", "from gexbot import …"),
        ("import threading", "import threading"),
        ("import urllib.request", "import urllib.request"),
        ("from gexbot.adapters import backquant", "from gexbot.adapters import …"),
        ("from datetime import datetime\nx = datetime.now()", "reads datetime.datetime.now"),
        ("import datetime\nx = datetime.datetime.now()", "reads datetime.datetime.now"),
        # the evasions: aliases, a name bound to the function, getattr
        ("import datetime as dt\nx = dt.datetime.now()", "reads datetime.datetime.now"),
        ("from datetime import datetime as D\nx = D.now()", "reads datetime.datetime.now"),
        ("from datetime import date as d\nx = d.today()", "reads datetime.date.today"),
        (
            "from datetime import datetime\nf = datetime.utcnow\nx = f()",
            "reads datetime.datetime.utcnow",
        ),
        ("import datetime as dt\nx = getattr(dt.datetime, 'now')()", "reads datetime.datetime.now"),
        ("import time as t\nx = t.monotonic()", "reads time.monotonic"),
        ("from time import time as now\nx = now()", "reads time.time"),
        ("from time import monotonic\nx = monotonic()", "reads time.monotonic"),
        ("import time\nx = getattr(time, 'time')()", "reads time.time"),
        ("x = open('f')", "call open()"),
        ("import random\nx = random.random()", "call random.random()"),
        ("import random\nr = random.Random()", "call random.Random()"),
        ("import random as rnd\nx = rnd.random()", "call random.random()"),
        ("from random import random as r\nx = r()", "call random.random()"),
        ("from random import Random\nr = Random()", "unseeded random.Random()"),
    ],
)
def test_the_check_itself_catches_each_kind_of_impurity(planted: str, reported: str) -> None:
    assert reported in problems(planted, "gexbot.core.planted")


def test_the_check_lets_pure_code_through() -> None:
    assert (
        problems(
            "from datetime import datetime\ndef f(now: datetime) -> datetime:\n"
            "    return now.replace(microsecond=0)\n",
            "gexbot.core.planted",
        )
        == []
    )
    source = (
        "from __future__ import annotations\nimport random\nfrom . import wire\n"
        "from .snapshot import Level\n"
        "def f(rng: random.Random) -> float:\n    return rng.random()\n"
    )
    assert problems(source, "gexbot.core.planted") == []


PACKAGE = CORE.parent
#: The composition root reads the clocks and seeds the generators for everyone; the simulator
#: is BackQuant's side of the wire and runs its market on its own clock.
CLOCK_OWNERS = ("app.py", "sim/")


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for p in PACKAGE.rglob("*.py")
        if not p.relative_to(PACKAGE).as_posix().startswith(CLOCK_OWNERS)
    ),
    ids=lambda p: p.relative_to(PACKAGE).as_posix(),
)
def test_only_the_root_reads_a_clock_or_makes_an_unseeded_generator(path: Path) -> None:
    module = "gexbot." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    assert clock_reads(path.read_text(encoding="utf-8"), module) == []
