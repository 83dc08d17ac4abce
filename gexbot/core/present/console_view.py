"""What the web console shows, computed from what the bot already holds (pure).

The page and its live updates are rendered from one `ConsoleView`: the levels of each symbol
from the latest bundle, and the rows the store keeps (firing statuses, the outbox, mutes,
personal alerts, feed warnings), plus who leads. No upstream request is ever made for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime

from gexbot.core.commands.chat import LEVEL_ROWS
from gexbot.core.market.snapshot import (
    BundleSnapshot,
    Level,
    SymbolStatus,
    distance_pct,
    regime,
)
from gexbot.core.present.format import fmt_age, fmt_pct, fmt_price
from gexbot.core.present.labels import LABELS, REGIME_TEXT
from gexbot.core.present.provenance import agreement_line, chain_line, source_line


@dataclass(frozen=True, slots=True)
class LevelRow:
    """One level of a symbol, as displayed."""

    label: str
    price: str
    distance: str  # "+1.23%": the level's distance from spot
    above: bool  # the level is above spot


@dataclass(frozen=True, slots=True)
class SymbolCard:
    """One symbol: spot, regime, levels, data age."""

    symbol: str
    status: str
    spot: str
    regime: str
    age: str
    stale: bool
    levels: tuple[LevelRow, ...]
    chart_key: str  # changes with each upstream refresh: the chart's cache key
    source: str = "source: BackQuant"  # where the levels came from (and why, on a fallback)
    agreement: str | None = None  # the last cross-check of the two sources (`both`)
    chain: str | None = None  # net GEX and zero gamma, when the levels came from the chains
    disagree: bool = False  # the cross-check has found a lasting disagreement


@dataclass(frozen=True, slots=True)
class StateRow:
    """A rule (or a feed warning) firing now for a symbol."""

    rule_id: str
    symbol: str
    since: datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One outbox row: an alert for one destination, and how its delivery went."""

    id: int
    created_at: datetime
    channel: str
    state: str  # pending | sending | sent | dead
    attempts: int
    what: str  # "hvl-cross BTCUSDT fired", "warning: feed down"
    error: str | None


@dataclass(frozen=True, slots=True)
class MuteRow:
    """An active mute."""

    scope: str
    target: str
    until: datetime
    by: str | None = None  # who set it


@dataclass(frozen=True, slots=True)
class ChatAlerts:
    """The personal alerts of one chat."""

    chat: str  # platform:chat id
    alerts: int
    paused: int


@dataclass(frozen=True, slots=True)
class StoreRows:
    """What the console reads from the store for one view."""

    firing: tuple[StateRow, ...] = ()
    warnings: tuple[StateRow, ...] = ()
    recent: tuple[DeliveryRow, ...] = ()
    dead: tuple[DeliveryRow, ...] = ()
    waiting: int = 0
    dead_total: int = 0
    mutes: tuple[MuteRow, ...] = ()
    personal: tuple[ChatAlerts, ...] = ()


@dataclass(frozen=True, slots=True)
class ConsoleView:
    """Everything on the page."""

    generated_at: datetime
    symbols: tuple[SymbolCard, ...]
    rows: StoreRows
    role: Mapping[str, object] = field(default_factory=dict)  # this replica, the leader
    problem: str | None = None  # why the view is incomplete (the database is down)


def symbol_cards(bundle: BundleSnapshot | None, now: datetime) -> tuple[SymbolCard, ...]:
    """A card per symbol of the latest bundle (none before the first poll)."""
    if bundle is None:
        return ()
    cards = []
    for sym, snap in sorted(bundle.symbols.items()):
        rows = []
        for level in LEVEL_ROWS:
            label = LABELS[level].title()
            value = snap.level(level)
            if value is None or snap.spot is None:
                continue
            dist = distance_pct(value, snap.spot)
            rows.append(LevelRow(label, fmt_price(value), fmt_pct(dist), value > snap.spot))
        cards.append(
            SymbolCard(
                symbol=sym,
                status=snap.status.value,
                spot=fmt_price(snap.spot) if snap.spot is not None else "—",
                regime=REGIME_TEXT[regime(snap.spot, snap.level(Level.HVL))],
                age=fmt_age(snap.age_seconds(now)),
                stale=snap.status is SymbolStatus.STALE,
                levels=tuple(rows),
                chart_key=snap.computed_at.isoformat() if snap.computed_at else "none",
                source=source_line(snap) if snap.usable else (snap.unavailable or "no data"),
                agreement=agreement_line(snap),
                chain=chain_line(snap),
                disagree=snap.agreement is not None and bool(snap.agreement.disagreeing),
            )
        )
    return tuple(cards)


def delivery_what(payload: Mapping[str, object]) -> str:
    """An outbox payload in a few words: the rule, the symbol, what happened."""
    rule = str(payload.get("rule_id", "?"))
    if rule.startswith("warning:"):
        return str(payload.get("message") or rule)
    symbol = str(payload.get("symbol", ""))
    reason = str(payload.get("reason", ""))
    return " ".join(p for p in (rule, symbol, reason) if p)


def view_json(view: ConsoleView) -> dict[str, object]:
    """The view as plain data for the data endpoint (datetimes left for the encoder)."""
    r = asdict(view.rows)
    return {
        "generated_at": view.generated_at,
        "symbols": [asdict(s) for s in view.symbols],
        **{k: r[k] for k in ("firing", "warnings", "recent", "dead", "mutes", "personal")},
        "outbox": {"waiting": view.rows.waiting, "dead": view.rows.dead_total},
        "role": dict(view.role),
        "problem": view.problem,
    }
