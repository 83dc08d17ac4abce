"""Durations as rule files write them: `0s`, `30s`, `15m`, `4h`, `1d`, or `1h30m`."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?[smhd])+$")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

DURATION_HINT = "write a number and a unit s, m, h or d (0s, 30s, 15m, 4h, 1d)"


def parse_duration(text: str) -> float:
    """Seconds in a duration string; ValueError with a hint when it is not one."""
    compact = text.strip().replace(" ", "")
    if not _WHOLE.match(compact):
        raise ValueError(f"bad duration {text!r}: {DURATION_HINT}")
    return sum(float(n) * _UNIT[u] for n, u in _PART.findall(compact))


def format_duration(seconds: float) -> str:
    """The shortest rule-file spelling of a duration: 900 → `15m`, 5400 → `1h30m`."""
    if seconds <= 0:
        return "0s"
    out = []
    rest = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)
