"""The levels chart: every symbol from the simulator, the example payloads, a golden image."""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
from matplotlib.image import imread

from gexbot.adapters.backquant import BackQuantClient
from gexbot.charts.render import render_chart
from gexbot.core.market.snapshot import Candle, Level, SymbolSnapshot, SymbolStatus
from gexbot.core.market.wire import multi_to_snapshots, parse_envelope
from tests.conftest import EXAMPLES
from tests.schema import load_json

GOLDEN = Path(__file__).resolve().parent / "golden" / "levels-chart.png"


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT", "SOLUSDT", "HYPEUSDT"])
async def test_every_symbol_from_the_simulator_renders(
    client: BackQuantClient, symbol: str
) -> None:
    snap = await client.levels(symbol, ["candles", "spot", "expected_move", "max_pain"])
    assert snap.candles
    png = render_chart(snap)
    assert png_size(png) == (1200, 675)
    assert 20_000 < len(png) < 400_000


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT", "SOLUSDT", "HYPEUSDT"])
def test_the_example_payloads_render_with_null_levels_left_out(symbol: str) -> None:
    env = parse_envelope(load_json(EXAMPLES / "multi-full.json"))
    snap = multi_to_snapshots(env.data, [symbol])[symbol]
    png = render_chart(snap)  # no candles in the bundle: levels alone, with a note
    assert png_size(png) == (1200, 675)


def _fixed() -> SymbolSnapshot:
    t0 = datetime(2026, 5, 14, 0, 0, tzinfo=UTC)
    closes = [81000 + 400 * np.sin(i / 5) for i in range(48)]
    candles = tuple(
        Candle(t0 + timedelta(minutes=30 * i), c - 50, c + 150, c - 150, c, 10.0)
        for i, c in enumerate(closes)
    )
    levels = {
        Level.HVL: 79500.0,
        Level.CALL_RESISTANCE: 85000.0,
        Level.CALL_WALL_2: None,
        Level.PUT_SUPPORT: 78000.0,
        Level.PUT_WALL_2: 75000.0,
        Level.ODTE_HVL: 80500.0,
        Level.MAX_PAIN: 81000.0,
        Level.EM_UPPER_1SD: 83258.5,
        Level.EM_LOWER_1SD: 79426.7,
        Level.EM_UPPER_2SD: 85174.5,
        Level.EM_LOWER_2SD: 77510.7,
        Level.PUT_WALL_3: 60000.0,
    }
    return SymbolSnapshot(
        symbol="BTCUSDT",
        status=SymbolStatus.OK,
        spot=81342.6,
        computed_at=datetime(2026, 5, 14, 9, 29, 58, tzinfo=UTC),
        levels=MappingProxyType(levels),
        candles=candles,
    )


def test_golden_image_within_tolerance() -> None:
    png = render_chart(_fixed())
    if not GOLDEN.exists():  # first run on a new renderer: write the reference to review
        GOLDEN.write_bytes(png)
    got = imread(io.BytesIO(png), format="png")
    want = imread(GOLDEN, format="png")
    assert got.shape == want.shape
    diff = float(np.abs(got.astype(float) - want.astype(float)).mean())
    assert diff < 0.01, f"mean pixel difference {diff:.4f}"


def test_no_price_history_still_draws_the_levels() -> None:
    snap = SymbolSnapshot(
        symbol="SOLUSDT",
        status=SymbolStatus.OK,
        spot=180.0,
        levels=MappingProxyType({Level.HVL: 178.0}),
    )
    assert png_size(render_chart(snap)) == (1200, 675)
    prices = [
        (datetime(2026, 5, 14, tzinfo=UTC) + timedelta(minutes=i), 180.0 + i / 10)
        for i in range(30)
    ]
    assert png_size(render_chart(snap, prices=prices)) == (1200, 675)


def test_without_candles_the_chart_uses_the_bots_stored_spot_history(db: object) -> None:
    from sqlalchemy import Engine

    from gexbot.charts.cache import stored_prices
    from gexbot.store.snapshots import save_snapshot
    from tests.rulekit import bundle, snapshot

    assert isinstance(db, Engine)
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    with db.begin() as conn:
        for i in range(5):
            at = now - timedelta(minutes=10 - i)
            save_snapshot(conn, bundle(snapshot(100 + i, at=at, hvl=101.0), at=at))
    prices = stored_prices(db, "BTCUSDT", now=now)
    assert [p for _, p in prices] == [100, 101, 102, 103, 104]
    snap = SymbolSnapshot(
        symbol="BTCUSDT",
        status=SymbolStatus.OK,
        spot=104.0,
        levels=MappingProxyType({Level.HVL: 101.0}),
    )
    assert png_size(render_chart(snap, prices=prices)) == (1200, 675)
