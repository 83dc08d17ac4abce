"""A symbol's history as columns: gaps as the live bot would have seen them, and one history
whether it came from BackQuant's stress history or from stored snapshots."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from gexbot.core.market.snapshot import Level, StressHistory
from gexbot.core.replay.history import SymbolHistory, gap_starts
from tests.reference_replay import history_to_snapshots, with_gaps
from tests.rulekit import T0


def _stress(offsets: list[int], spots: list[float | None]) -> StressHistory:
    n = len(offsets)
    return StressHistory(
        times=tuple(T0 + timedelta(seconds=s) for s in offsets),
        spot=tuple(spots),
        hvl=tuple(100.0 + i for i in range(n)),
        call_wall=(110.0,) * n,
        put_wall=(None,) * n,
        net_gex=(1e8,) * n,
    )


def test_a_skip_of_more_than_two_steps_is_a_gap_one_step_after_the_last_row() -> None:
    times = [T0 + timedelta(seconds=s) for s in (0, 30, 60, 150, 180, 240)]
    usual, starts = gap_starts(times)
    assert usual == timedelta(seconds=30)
    assert starts == [3]  # 60 → 150 is three steps; 180 → 240 is two, not a gap
    assert gap_starts(times[:1]) == (timedelta(0), [])


def test_stress_columns_carry_the_gap_as_an_unusable_row() -> None:
    h = SymbolHistory.of_stress("BTCUSDT", _stress([0, 30, 60, 150], [1.0, None, 3.0, 4.0]))
    assert [(t - T0).total_seconds() for t in h.times] == [0, 30, 60, 90, 150]
    assert h.usable.tolist() == [True, False, True, False, True]  # no spot; the gap
    assert np.isnan(h.spot[3])
    assert h.levels[Level.HVL].tolist()[:3] == [100.0, 101.0, 102.0]
    assert np.isnan(h.levels[Level.PUT_SUPPORT]).all()
    assert set(h.levels) == {Level.HVL, Level.CALL_RESISTANCE, Level.PUT_SUPPORT}


def test_the_same_history_from_stress_columns_and_from_snapshots_is_one_history() -> None:
    stress = _stress([0, 30, 60, 150, 180, 210], [1.0, None, 3.0, 4.0, 5.0, 6.0])
    direct = SymbolHistory.of_stress("BTCUSDT", stress)
    snaps = history_to_snapshots("BTCUSDT", stress)
    via = SymbolHistory.of_snapshots("BTCUSDT", snaps)
    assert direct.times == via.times == tuple(at for at, _ in with_gaps(snaps))
    assert direct.usable.tolist() == via.usable.tolist()
    np.testing.assert_array_equal(direct.spot, via.spot)
    assert set(direct.levels) == set(via.levels)
    for lv, col in direct.levels.items():
        np.testing.assert_array_equal(col, via.levels[lv])
