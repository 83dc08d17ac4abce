"""The simulated market stays plausible for as long as it runs (the demo for a day, the default
configuration for a month).

Each walk runs a simulator on a settable clock and samples its levels: the magnitude of net
GEX stays within an order of magnitude of where it started, the walls bracket spot at a
plausible distance, and the HVL keeps changing side (so the demo and replays show crosses).
The walks are long, so they run once per session, two at a time in worker processes.
"""

from __future__ import annotations

import multiprocessing
import statistics
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace

import pytest

from gexbot.sim.chain import Levels
from gexbot.sim.market import DEMO_CONFIG, SimConfig, Simulator
from tests.conftest import Clock

#: A month of simulated market per seed: minutes of CPU, so it runs with the slow tests.
pytestmark = pytest.mark.slow


@dataclass(slots=True)
class Record:
    """What one symbol's samples showed."""

    start_gex: float
    gex_ratios: list[float] = field(default_factory=list)
    call_distances: list[float] = field(default_factory=list)
    put_distances: list[float] = field(default_factory=list)
    brackets_spot: bool = True
    hvl_side_changes: int = 0
    last_side: bool | None = None

    def add(self, lv: Levels) -> None:
        cr, ps = lv.call_walls[0], lv.put_walls[0]
        assert cr is not None
        assert ps is not None
        self.brackets_spot &= ps < lv.spot < cr
        self.call_distances.append(cr / lv.spot - 1)
        self.put_distances.append(1 - ps / lv.spot)
        self.gex_ratios.append(abs(lv.net_gex) / abs(self.start_gex))
        if lv.hvl is not None:
            side = lv.spot > lv.hvl
            self.hvl_side_changes += self.last_side is not None and side != self.last_side
            self.last_side = side


def _walk(config: SimConfig, *, seconds: float, sample_every: float) -> dict[str, Record]:
    clock = Clock()
    sim = Simulator(config, clock=clock)
    records = {s: Record(sim.levels(s).net_gex) for s in sim.states}
    every = max(1, round(sample_every / config.refresh))
    for tick in range(round(seconds / config.refresh)):
        clock.advance(config.refresh)
        sim.advance()
        if tick % every == 0:
            for sym, rec in records.items():
                rec.add(sim.levels(sym))
    return records


def _check(
    records: dict[str, Record], *, days: float, crosses_per_day: tuple[float, float]
) -> None:
    for sym, rec in records.items():
        assert max(rec.gex_ratios) < 10, f"{sym}: net GEX grew {max(rec.gex_ratios):.1f}x"
        # Net GEX may pass through zero (a fall into the put-heavy zone turns it negative), so
        # the lower bound holds for the typical sample, not for every one.
        assert statistics.median(rec.gex_ratios) > 0.1, sym
        assert rec.brackets_spot, f"{sym}: a wall on the wrong side of spot"
        for wall, distances in (("call", rec.call_distances), ("put", rec.put_distances)):
            dist = sorted(distances)
            # Walls sit at strikes that drew interest while spot was elsewhere, so a wall may
            # lag a fast move for a while; typically it is a few percent away.
            assert statistics.median(dist) < 0.10, f"{sym} {wall}"
            assert dist[int(0.9 * (len(dist) - 1))] < 0.15, f"{sym}: {wall} wall far from spot"
            assert dist[-1] < 0.25, f"{sym}: {wall} wall {dist[-1]:.0%} from spot"
        per_day = rec.hvl_side_changes / days
        low, high = crosses_per_day
        assert low <= per_day <= high, f"{sym}: HVL changed side {per_day:.1f} times a day"


DEMO_SEEDS = (DEMO_CONFIG.seed, 2026)
DEFAULT_SEEDS = (0, 7)


def _demo_day(seed: int) -> dict[str, Record]:
    return _walk(replace(DEMO_CONFIG, seed=seed), seconds=86400.0, sample_every=60.0)


def _default_month(seed: int) -> dict[str, Record]:
    return _walk(SimConfig(seed=seed), seconds=30 * 86400.0, sample_every=900.0)


@pytest.fixture(scope="module")
def walks() -> Iterator[dict[tuple[str, int], dict[str, Record]]]:
    # spawn, not fork: forking a process that runs threads (pytest-timeout) can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        demo = {("demo", s): pool.submit(_demo_day, s) for s in DEMO_SEEDS}
        default = {("default", s): pool.submit(_default_month, s) for s in DEFAULT_SEEDS}
        yield {key: job.result() for key, job in {**demo, **default}.items()}


@pytest.mark.parametrize("seed", DEMO_SEEDS)
def test_demo_market_stays_plausible_for_a_day(
    walks: dict[tuple[str, int], dict[str, Record]], seed: int
) -> None:
    # The demo runs 1000x market activity: the HVL is crossed several times an hour.
    _check(walks["demo", seed], days=1.0, crosses_per_day=(24.0, 1000.0))


@pytest.mark.parametrize("seed", DEFAULT_SEEDS)
def test_default_market_stays_plausible_for_thirty_days(
    walks: dict[tuple[str, int], dict[str, Record]], seed: int
) -> None:
    _check(walks["default", seed], days=30.0, crosses_per_day=(0.2, 48.0))
