"""The levels chart: price, HVL and walls, the expected-move band, spot and regime at a glance.

Rendered with matplotlib's Agg canvas (no GUI, no pyplot global state, no font download: the
bundled DejaVu Sans), sized for a phone screen in Telegram and Slack.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from gexbot.core.market.snapshot import Level, Regime, SymbolSnapshot, distance_pct, regime
from gexbot.core.present.format import fmt_pct, fmt_price
from gexbot.core.present.labels import LABELS, REGIME_TEXT

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 4.5, 150  # 1200 x 675 px
WINDOW = 0.08  # levels further than 8% from spot are listed, not drawn

GREEN, RED, PURPLE, GREY, BLUE = "#1a9850", "#d73027", "#6a3d9a", "#7f7f7f", "#4575b4"

#: (level, colour, width, style, alpha); the legend names come from `core.present.labels`.
LINES: tuple[tuple[Level, str, float, str, float], ...] = (
    (Level.HVL, PURPLE, 2.2, "-", 1.0),
    (Level.ZERO_GAMMA, PURPLE, 1.6, "-.", 0.9),  # chains only: beside the HVL, told apart
    (Level.CALL_RESISTANCE, GREEN, 2.0, "-", 1.0),
    (Level.CALL_WALL_2, GREEN, 1.0, "-", 0.45),
    (Level.CALL_WALL_3, GREEN, 1.0, "-", 0.3),
    (Level.PUT_SUPPORT, RED, 2.0, "-", 1.0),
    (Level.PUT_WALL_2, RED, 1.0, "-", 0.45),
    (Level.PUT_WALL_3, RED, 1.0, "-", 0.3),
    (Level.ODTE_HVL, PURPLE, 1.3, "--", 0.8),
    (Level.ODTE_CALL_RESISTANCE, GREEN, 1.3, "--", 0.8),
    (Level.ODTE_PUT_SUPPORT, RED, 1.3, "--", 0.8),
    (Level.MAX_PAIN, GREY, 1.2, ":", 0.9),
)


def render_chart(
    snap: SymbolSnapshot,
    *,
    prices: Sequence[tuple[datetime, float]] = (),
) -> bytes:
    """A PNG of one symbol's levels. `prices` is used when the snapshot has no candles."""
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.07, 0.1, 0.68, 0.78))
    series = [(c.at, c.close) for c in snap.candles] or list(prices)
    x_end = _draw_price(ax, snap, series)
    center = snap.spot or (series[-1][1] if series else None)
    shown: list[float] = [p for _, p in series] + ([snap.spot] if snap.spot else [])
    labels, off_chart = _draw_levels(ax, snap, center, shown)
    if shown:
        lo, hi = min(shown), max(shown)
        pad = (hi - lo) * 0.08 or (abs(hi) * 0.01 or 1.0)
        ax.set_ylim(lo - pad, hi + pad)
    _label_right(fig, ax, labels)
    if snap.spot is not None:
        if x_end is not None:
            ax.plot([x_end], [snap.spot], marker="o", color="#222222", markersize=6, zorder=4)
        ax.axhline(snap.spot, color="#222222", linewidth=0.8, alpha=0.35)
    _draw_header(fig, ax, snap, off_chart)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _draw_price(
    ax: Axes, snap: SymbolSnapshot, series: list[tuple[datetime, float]]
) -> float | None:
    if not series:
        ax.set_xticks([])
        ax.text(
            0.5,
            0.5,
            "no price history yet: levels only",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color=GREY,
            fontsize=10,
        )
        return None
    xs = date2num([t for t, _ in series])  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=UTC))  # type: ignore[no-untyped-call]
    ax.plot(xs, [p for _, p in series], color="#222222", linewidth=1.4, zorder=3)
    if snap.candles:
        lows = [c.low for c in snap.candles]
        highs = [c.high for c in snap.candles]
        ax.fill_between(xs, lows, highs, color="#222222", alpha=0.12, linewidth=0, zorder=2)
    return float(xs[-1])


def _draw_levels(
    ax: Axes, snap: SymbolSnapshot, center: float | None, shown: list[float]
) -> tuple[list[tuple[float, str, str]], list[str]]:
    labels: list[tuple[float, str, str]] = []
    off_chart: list[str] = []
    u1, l1 = snap.level(Level.EM_UPPER_1SD), snap.level(Level.EM_LOWER_1SD)
    u2, l2 = snap.level(Level.EM_UPPER_2SD), snap.level(Level.EM_LOWER_2SD)
    if u2 is not None and l2 is not None:
        ax.axhspan(l2, u2, color=BLUE, alpha=0.06, linewidth=0, zorder=0)
    if u1 is not None and l1 is not None:
        ax.axhspan(l1, u1, color=BLUE, alpha=0.12, linewidth=0, zorder=0)
        labels += [
            (u1, f"{LABELS[Level.EM_UPPER_1SD].short} {fmt_price(u1)}", BLUE),
            (l1, f"{LABELS[Level.EM_LOWER_1SD].short} {fmt_price(l1)}", BLUE),
        ]
        shown += [u1, l1]
    for level, colour, width, style, alpha in LINES:
        label = LABELS[level].title(short=True)
        value = snap.level(level)
        if value is None:
            continue  # null in the data: left out, never drawn at zero
        if center is not None and abs(value / center - 1) > WINDOW:
            off_chart.append(f"{label} {fmt_price(value)}")
            continue
        ax.axhline(value, color=colour, linewidth=width, linestyle=style, alpha=alpha, zorder=1)
        dist = fmt_pct(distance_pct(value, snap.spot)) if snap.spot else ""
        labels.append((value, f"{label} {fmt_price(value)} {dist}".strip(), colour))
        shown.append(value)
    return labels, off_chart


def _draw_header(fig: Figure, ax: Axes, snap: SymbolSnapshot, off_chart: list[str]) -> None:
    reg = regime(snap.spot, snap.level(Level.HVL))
    tint = {Regime.ABOVE_HVL: GREEN, Regime.BELOW_HVL: RED}.get(reg)
    if tint:
        ax.set_facecolor(tint + "10")
    regime_text = REGIME_TEXT[reg]
    fig.text(
        0.07,
        0.93,
        f"{snap.symbol}  spot {fmt_price(snap.spot)}",
        fontsize=14,
        fontweight="bold",
        va="bottom",
    )
    fig.text(0.07, 0.895, regime_text, fontsize=10, color=tint or GREY, va="bottom")
    stamp = snap.computed_at.strftime("data %Y-%m-%d %H:%M:%S UTC") if snap.computed_at else ""
    fig.text(0.99, 0.01, stamp, fontsize=8, color=GREY, ha="right", va="bottom")
    if off_chart:
        fig.text(
            0.07, 0.01, "off chart: " + ", ".join(off_chart), fontsize=8, color=GREY, va="bottom"
        )
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_price(v)))
    ax.grid(axis="y", color="#dddddd", linewidth=0.5)
    ax.tick_params(labelsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _label_right(fig: Figure, ax: Axes, labels: list[tuple[float, str, str]]) -> None:
    """Level labels in the right margin, spread out so they never overlap."""
    lo, hi = ax.get_ylim()
    box = ax.get_position()
    placed: list[float] = []
    min_gap = 0.045
    for value, text, colour in sorted(labels, key=lambda t: -t[0]):
        y = box.y0 + (value - lo) / (hi - lo) * box.height
        if placed and placed[-1] - y < min_gap:
            y = placed[-1] - min_gap
        placed.append(y)
        fig.text(box.x1 + 0.01, y, text, fontsize=8, color=colour, va="center")
