"""The last snapshot per symbol (the previous cycle, across restarts) and a bounded history."""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection, delete, select

from gexbot.core.market.snapshot import (
    BundleSnapshot,
    ChainFacts,
    Level,
    SymbolSnapshot,
    SymbolStatus,
)
from gexbot.core.market.wire import parse_time
from gexbot.store.dialect import insert
from gexbot.store.tables import snapshot_history, snapshot_last

_LEVEL_NAMES = frozenset(lv.value for lv in Level)


def _data(snap: SymbolSnapshot) -> dict[str, Any]:
    data: dict[str, Any] = {
        "levels": {lv.value: v for lv, v in snap.levels.items() if v is not None},
        "max_pain_value": snap.max_pain_value,
        "positioning": snap.positioning,
    }
    if snap.chain is not None:  # the source survives a restart: a switch re-baselines
        data["chain"] = {
            "venues": list(snap.chain.venues),
            "contracts": snap.chain.contracts,
            "net_gex": snap.chain.net_gex,
            "settles_at": snap.chain.settles_at.isoformat(),
            "roll_off": {lv.value: v for lv, v in snap.chain.roll_off.items()},
        }
    if snap.fallback is not None:
        data["fallback"] = snap.fallback
    return data


def _chain(data: Any) -> ChainFacts | None:
    """Stored chain facts; None for BackQuant's snapshots and for rows it cannot read."""
    if not isinstance(data, dict):
        return None
    settles = parse_time(data.get("settles_at"))
    net = data.get("net_gex")
    if settles is None or not isinstance(net, int | float):
        return None
    shares = data.get("roll_off") or {}
    return ChainFacts(
        venues=tuple(str(v) for v in data.get("venues") or ()),
        contracts=int(data.get("contracts") or 0),
        net_gex=float(net),
        settles_at=settles,
        roll_off=MappingProxyType(
            {Level(k): float(v) for k, v in shares.items() if k in _LEVEL_NAMES}
        ),
    )


def _snapshot(
    symbol: str, status: str, spot: float | None, computed_at: datetime | None, data: dict[str, Any]
) -> SymbolSnapshot:
    levels = {Level(k): v for k, v in (data.get("levels") or {}).items() if k in _LEVEL_NAMES}
    return SymbolSnapshot(
        symbol=symbol,
        status=SymbolStatus(status),
        spot=spot,
        computed_at=computed_at,
        levels=MappingProxyType(levels),
        max_pain_value=data.get("max_pain_value"),
        positioning=data.get("positioning"),
        chain=_chain(data.get("chain")),
        fallback=data.get("fallback"),
    )


def save_snapshot(conn: Connection, bundle: BundleSnapshot) -> None:
    """Upsert the last snapshot of every symbol; append served data to the history."""
    rows = [
        {
            "symbol": sym,
            "status": snap.status.value,
            "spot": snap.spot,
            "computed_at": snap.computed_at,
            "received_at": bundle.received_at,
            "data": _data(snap),
        }
        for sym, snap in bundle.symbols.items()
    ]
    if not rows:
        return
    stmt = insert(conn, snapshot_last)
    stmt = stmt.on_conflict_do_update(
        index_elements=[snapshot_last.c.symbol],
        set_={
            c: stmt.excluded[c] for c in ("status", "spot", "computed_at", "received_at", "data")
        },
    )
    conn.execute(stmt, rows)
    history = [
        {
            "symbol": r["symbol"],
            "computed_at": r["computed_at"],
            "spot": r["spot"],
            "data": r["data"],
        }
        for r, snap in zip(rows, bundle.symbols.values(), strict=True)
        if snap.computed_at is not None and snap.status in (SymbolStatus.OK, SymbolStatus.STALE)
    ]
    if history:
        # The same computed_at polled twice is one upstream snapshot: keep the first.
        conn.execute(insert(conn, snapshot_history).on_conflict_do_nothing(), history)


def load_last_bundle(conn: Connection) -> BundleSnapshot | None:
    """The last stored snapshot of every symbol (the previous cycle after a restart)."""
    rows = list(conn.execute(select(snapshot_last)))
    if not rows:
        return None
    symbols = {r.symbol: _snapshot(r.symbol, r.status, r.spot, r.computed_at, r.data) for r in rows}
    received = max((r.received_at for r in rows if r.received_at), default=None)
    return BundleSnapshot(received_at=received, symbols=MappingProxyType(symbols))


def load_history(
    conn: Connection, symbol: str, *, since: datetime | None = None
) -> list[SymbolSnapshot]:
    """Stored snapshots of a symbol, oldest first (for replay and charts)."""
    stmt = select(snapshot_history).where(snapshot_history.c.symbol == symbol)
    if since is not None:
        stmt = stmt.where(snapshot_history.c.computed_at >= since)
    stmt = stmt.order_by(snapshot_history.c.computed_at)
    return [
        _snapshot(r.symbol, SymbolStatus.OK.value, r.spot, r.computed_at, r.data)
        for r in conn.execute(stmt)
    ]


def prune_history(conn: Connection, *, before: datetime) -> int:
    """Delete history older than `before`; returns rows deleted."""
    result = conn.execute(delete(snapshot_history).where(snapshot_history.c.computed_at < before))
    return result.rowcount or 0
