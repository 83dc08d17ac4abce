"""Number and text formatting shared by every renderer (terminal, Slack, Telegram, Discord)."""

from __future__ import annotations

import re

#: C0 and C1 controls (ESC, BEL, CR…), DEL, and the invisible or direction-changing marks that
#: can disguise text (zero-width spaces, bidi overrides and isolates).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, limit: int | None = None) -> str:
    """Text from outside (an upstream error, a header, a symbol) made safe for a terminal, a log
    line or a chat message: every control character shown as an escape (`ESC` → `\\x1b`), so
    none can clear a screen, retitle a window or reorder a line; cut to `limit` characters."""
    out = _CONTROL.sub(_escape, text)
    if limit is not None and len(out) > limit:
        out = out[: max(0, limit - 1)] + "…"
    return out


def fmt_price(value: float | None) -> str:
    """A price as a trader reads it: `81,342.6`, `3,118.45`, `182.35`, `38.412`; `—` for None."""
    if value is None:
        return "—"
    mag = abs(value)
    if mag >= 10_000:
        return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"
    if mag >= 100:
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value == int(value) else f"{value:,.2f}"
    if mag >= 1:
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return f"{value:.5f}".rstrip("0").rstrip(".")


def fmt_pct(value: float | None, *, signed: bool = True) -> str:
    """A percentage with two decimals: `+0.42%`."""
    if value is None:
        return "—"
    return f"{value:+.2f}%" if signed else f"{value:.2f}%"


def fmt_age(seconds: float | None) -> str:
    """An age: `12s`, `4m05s`, `3h02m`; `unknown` for None."""
    if seconds is None:
        return "unknown"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
