"""Scenario files: YAML that scripts the simulator step by step.

```yaml
seed: 7                 # optional; --seed wins when both are given
walk: false             # freeze the random walk so scripted values stay exact
refresh: 1              # seconds per step (the upstream refresh cycle)
steps:
  - at: 0
    spot: {BTCUSDT: 80000}
    levels: {BTCUSDT: {hvl: 80500, call_resistance: 85000}}
  - at: 3               # "BTC crosses HVL at step 3"
    spot: {BTCUSDT: 81000}
  - at: 5
    missing: [HYPEUSDT]           # cold: served as null + `missing`
    unsupported: [SOLUSDT]        # reads as `invalid`
    stale: {ETHUSDT: 600}         # computed_at held 600 s in the past
    error: {status: 503, count: 2, retry_after: 1}
    fault: {kind: truncated}      # bad_json | truncated | wrong_shape | success_false
    delay: 0.5                    # seconds added to every request from now on
  - at: 8
    served: [HYPEUSDT]
    supported: [SOLUSDT]
    clear_levels: [BTCUSDT]
    stale: {ETHUSDT: null}
```
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gexbot.sim.chain import SPECS
from gexbot.sim.market import OVERRIDABLE, Fault, FaultKind, Simulator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorStep(_Model):
    status: int = Field(503, ge=400, le=599)
    code: str | None = None
    message: str | None = None
    retry_after: float | None = Field(None, ge=0)
    count: int = Field(1, ge=1)


class FaultStep(_Model):
    kind: Literal["bad_json", "truncated", "wrong_shape", "success_false", "disconnect"]
    count: int = Field(1, ge=1)


class Step(_Model):
    at: int = Field(ge=0)
    spot: dict[str, float] = {}
    levels: dict[str, dict[str, float | None]] = {}
    clear_levels: list[str] = []
    missing: list[str] = []
    served: list[str] = []
    unsupported: list[str] = []
    supported: list[str] = []
    stale: dict[str, float | None] = {}
    error: ErrorStep | None = None
    fault: FaultStep | None = None
    delay: float | None = Field(None, ge=0)


class Scenario(_Model):
    seed: int | None = None
    walk: bool | None = None
    refresh: float | None = Field(None, gt=0)
    speed: float | None = Field(None, gt=0)
    steps: list[Step] = []


class ScenarioError(ValueError):
    """A scenario file could not be read; the message names the file and the problem."""


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file."""
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        scenario = Scenario.model_validate(raw)
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ScenarioError(f"{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ScenarioError(f"{path}: {problems}") from None
    for step in scenario.steps:
        named = [*step.spot, *step.levels, *step.clear_levels, *step.missing, *step.served]
        named += [*step.stale]
        for sym in named:
            if sym not in SPECS:
                raise ScenarioError(f"{path}: step {step.at}: unknown symbol {sym}")
        for sym, levels in step.levels.items():
            unknown = set(levels) - OVERRIDABLE
            if unknown:
                raise ScenarioError(f"{path}: step {step.at}: {sym}: unknown level {unknown}")
    return scenario


def apply_scenario(sim: Simulator, scenario: Scenario) -> None:
    """Schedule every step of `scenario` on `sim`."""
    for step in scenario.steps:
        sim.at_step(step.at, _action(step))


def _action(step: Step) -> Callable[[Simulator], None]:
    def run(sim: Simulator) -> None:
        for sym, spot in step.spot.items():
            sim.set_spot(sym, spot)
        for sym in step.clear_levels:
            sim.clear_levels(sym)
        for sym, levels in step.levels.items():
            sim.set_levels(sym, **levels)
        for sym in step.missing:
            sim.set_missing(sym, True)
        for sym in step.served:
            sim.set_missing(sym, False)
        for sym in step.unsupported:
            sim.set_supported(sym, False)
        for sym in step.supported:
            sim.set_supported(sym, True)
        for sym, age in step.stale.items():
            sim.set_stale(sym, age)
        if step.error is not None:
            e = step.error
            sim.inject(
                Fault(
                    FaultKind.HTTP_ERROR,
                    status=e.status,
                    code=e.code,
                    message=e.message,
                    retry_after=e.retry_after,
                    count=e.count,
                )
            )
        if step.fault is not None:
            sim.inject(Fault(FaultKind(step.fault.kind), count=step.fault.count))
        if step.delay is not None:
            sim.delay = step.delay

    return run
