"""Number formatting shared by every renderer (console, Slack, Telegram)."""

from __future__ import annotations


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
