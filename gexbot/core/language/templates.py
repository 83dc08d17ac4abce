"""Message templates: the fields a rule's `message` may use, checked before anything runs."""

from __future__ import annotations

import difflib
import string
from collections.abc import Mapping

TEMPLATE_FIELDS: tuple[str, ...] = (
    "rule",
    "symbol",
    "level_name",
    "level",
    "spot",
    "distance_pct",
    "direction",
    "severity",
    "computed_at",
)

_SAMPLE = dict.fromkeys(TEMPLATE_FIELDS, "x")


def template_problems(template: str) -> list[str]:
    """Why `template` cannot be rendered (unknown fields, bad braces); empty when it can."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"bad message template: {exc} (write {{{{ and }}}} for literal braces)"]
    problems = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit():
            problems.append("message template fields need a name, e.g. {symbol}")
            continue
        base = name.split(".")[0].split("[")[0]
        if base not in TEMPLATE_FIELDS or base != name:
            hint = difflib.get_close_matches(base, TEMPLATE_FIELDS, n=1)
            tail = f" (did you mean {{{hint[0]}}}?)" if hint else ""
            problems.append(
                f"unknown message field {{{name}}}{tail}; fields: "
                + ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS)
            )
    if not problems:
        try:
            template.format_map(_SAMPLE)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            problems.append(f"bad message template: {exc}")
    return problems


def render_template(template: str, values: Mapping[str, str]) -> str:
    """Fill a checked template; every value is already formatted text."""
    return template.format_map(dict(values))
