"""No import runs back up the layers, and settings stop at the composition root.

    cli → app → { loops, chat, web } → { charts, store, adapters } → core

`gexbot.settings` is read by the command line and the root only: every part below is handed
the small configuration it needs, so a part can be built (and tested) without the environment.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gexbot"

#: Each part, and the parts it may import (besides itself). Only `app` and `cli` list
#: `settings`: adding it anywhere else is the leak this file exists to stop.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "store": frozenset({"core"}),
    "adapters": frozenset({"core", "__init__"}),  # the User-Agent names the version
    "sim": frozenset({"core"}),
    "charts": frozenset({"core", "store", "adapters"}),
    "loops": frozenset({"core", "store", "adapters", "charts"}),
    "chat": frozenset({"core", "store", "adapters", "charts", "loops"}),
    "web": frozenset({"core", "store", "adapters", "charts", "loops"}),
    "settings": frozenset({"core"}),
    "logs": frozenset(),
    "app": frozenset(
        {"core", "store", "adapters", "charts", "loops", "chat", "web", "settings", "logs"}
    ),
    "cli": frozenset(
        {"core", "store", "adapters", "charts", "loops", "app", "settings", "logs", "sim"}
    ),
    "__main__": frozenset({"cli"}),
    "__init__": frozenset(),
}


def imported_parts(source: str, module: str) -> set[str]:
    """The gexbot parts (`core`, `store`, …) `source`, the text of `module`, imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # `from gexbot import settings` imports the part named after `import`
            names = [f"{target}.{a.name}" for a in node.names] if target == "gexbot" else [target]
        found |= {_part_of(n) for n in names if n.startswith("gexbot.")}
    return found


def _part_of(name: str) -> str:
    """`gexbot.loops.poll` → loops; `gexbot.USER_AGENT` (a name of the package) → __init__."""
    part = name.split(".")[1]
    is_part = (PACKAGE / part).is_dir() or (PACKAGE / f"{part}.py").is_file()
    return part if is_part else "__init__"


def _part(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.relative_to(PACKAGE).as_posix()
)
def test_a_module_imports_only_the_parts_below_it(path: Path) -> None:
    part = _part(path)
    module = "gexbot." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    upward = imported_parts(path.read_text(encoding="utf-8"), module) - {part} - MAY_IMPORT[part]
    assert upward == set(), f"{module} imports {sorted(upward)}"


@pytest.mark.parametrize(
    ("source", "module", "parts"),
    [
        ("from gexbot.settings import Settings", "gexbot.loops.poll", {"settings"}),
        ("from gexbot import settings", "gexbot.store.engine", {"settings"}),
        ("from ...settings import env_name", "gexbot.store.x.y", {"settings"}),
        ("from .. import app", "gexbot.loops.service", {"app"}),
        ("import gexbot.settings as s", "gexbot.chat.service", {"settings"}),
        ("from .cycle import Pipeline", "gexbot.loops.service", {"loops"}),
    ],
)
def test_the_check_itself_sees_every_spelling_of_an_import(
    source: str, module: str, parts: set[str]
) -> None:
    assert imported_parts(source, module) == parts


@pytest.mark.parametrize(
    "package",
    sorted(p.parent for p in PACKAGE.rglob("__init__.py")),
    ids=lambda p: p.relative_to(PACKAGE.parent).as_posix(),
)
def test_every_package_says_what_it_holds(package: Path) -> None:
    # `ls` plus the first line of each `__init__` is the map a newcomer reads.
    tree = ast.parse((package / "__init__.py").read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree)
    assert doc, f"{package.relative_to(PACKAGE.parent)} has no docstring"
