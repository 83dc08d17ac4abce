"""The last snapshot per symbol (the previous cycle, across restarts) and a bounded history."""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection, delete, select

from gexbot.core.market.snapshot import BundleSnapshot, Level, SymbolSnapshot, SymbolStatus
from gexbot.store.dialect import insert
from gexbot.store.tables import snapshot_history, snapshot_last

_LEVEL_NAMES = frozenset(lv.value for lv in Level)


def _data(snap: SymbolSnapshot) -> dict[str, Any]:
    return {
        "levels": {lv.value: v for lv, v in snap.levels.items() if v is not None},
        "max_pain_value": snap.max_pain_value,
        "positioning": snap.positioning,
    }


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
