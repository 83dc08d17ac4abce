"""YAML into plain Python values plus the line and column of every key and value.

PyYAML's `safe_load` forgets positions; rule errors must say `FILE:LINE:COL`, so the node tree is
converted by hand and each path (`("rules", 2, "when", "near")`) remembers where it was written.
Duplicate keys, which `safe_load` silently collapses, are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


@dataclass(slots=True)
class Located:
    """A decoded document with positions (1-based) of values and mapping keys by path."""

    value: Any
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    duplicates: list[tuple[Path, tuple[int, int]]] = field(default_factory=list)

    def where(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """Position of `path` (its key when `key`), else of its nearest written ancestor."""
        probe = path
        while True:
            if key and probe in self.keys:
                return self.keys[probe]
            if probe in self.values:
                return self.values[probe]
            if not probe:
                return (1, 1)
            probe = probe[:-1]
            key = False


class YamlSyntaxError(ValueError):
    """The text is not YAML; `line`/`col` are 1-based."""

    def __init__(self, message: str, line: int, col: int) -> None:
        super().__init__(message)
        self.line = line
        self.col = col


def load_located(text: str) -> Located:
    """Parse one YAML document, raising YamlSyntaxError with a position."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Located(value=None)
        out = Located(value=None)
        out.value = _convert(loader, node, (), out)
        return out
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlSyntaxError(
            str(exc.problem or exc.context or "invalid YAML"), line, col
        ) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"invalid YAML ({exc})", 1, 1) from None
    finally:
        loader.dispose()


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: Path, out: Located) -> Any:
    out.values[path] = _pos(node)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<` merge keys
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                key = str(key)
            child: Path = (*path, key if isinstance(key, str | int) else str(key))
            if key in result:
                out.duplicates.append((child, _pos(key_node)))
            out.keys[child] = _pos(key_node)
            result[key] = _convert(loader, value_node, child, out)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, (*path, i), out) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
