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
    venues_down: [bybit]          # the venue's public endpoints answer 503
  - at: 8
    venues_up: [bybit]
    served: [HYPEUSDT]
    supported: [SOLUSDT]
    clear_levels: [BTCUSDT]
    stale: {ETHUSDT: null}
```

`levels:` pins BackQuant's levels only: the venues' chains keep the computed ones, so a pinned
level is how a scenario makes the two sources disagree (`GEXBOT_SOURCE=both`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gexbot.core.language.yaml_located import Located, YamlSyntaxError, load_located
from gexbot.sim.chain import SPECS
from gexbot.sim.market import OVERRIDABLE, Fault, FaultKind, Simulator


class _Model(BaseModel):
    # NaN and infinities are refused everywhere: served, they would be invalid JSON.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


#: A price: positive, finite and one a market could show (its square must stay finite).
Price = Annotated[float, Field(gt=0, le=1e9)]
#: Seconds: not negative, at most ten years.
Seconds = Annotated[float, Field(ge=0, le=10 * 365 * 86400)]


class ErrorStep(_Model):
    status: int = Field(503, ge=400, le=599)
    code: str | None = None
    message: str | None = None
    retry_after: Annotated[float, Field(ge=0, le=86400)] | None = None
    count: int = Field(1, ge=1)


class FaultStep(_Model):
    kind: Literal["bad_json", "truncated", "wrong_shape", "success_false", "disconnect"]
    count: int = Field(1, ge=1)


VenueName = Literal["deribit", "bybit", "okx"]


class Step(_Model):
    at: int = Field(ge=0)
    spot: dict[str, Price] = {}
    levels: dict[str, dict[str, Price | None]] = {}
    clear_levels: list[str] = []
    missing: list[str] = []
    served: list[str] = []
    unsupported: list[str] = []
    supported: list[str] = []
    stale: dict[str, Seconds | None] = {}
    error: ErrorStep | None = None
    fault: FaultStep | None = None
    delay: Annotated[float, Field(ge=0, le=60)] | None = None
    venues_down: list[VenueName] = []
    venues_up: list[VenueName] = []


class Scenario(_Model):
    seed: int | None = None
    walk: bool | None = None
    refresh: Annotated[float, Field(gt=0, le=86400)] | None = None
    speed: Annotated[float, Field(gt=0, le=1e6)] | None = None
    steps: list[Step] = []


class ScenarioError(ValueError):
    """A scenario file could not be read; the message names the file and the problem."""


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; every problem is reported as `FILE:LINE:COL: …`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        doc = load_located(text)
    except YamlSyntaxError as exc:
        raise ScenarioError(f"{path}:{exc.line}:{exc.col}: invalid YAML ({exc})") from None
    try:
        scenario = Scenario.model_validate(doc.value or {})
    except ValidationError as exc:
        problems = [
            _located(path, doc, tuple(e["loc"]), e["msg"]) for e in exc.errors(include_url=False)
        ]
        raise ScenarioError("\n".join(problems)) from None
    for k, step in enumerate(scenario.steps):
        named: dict[str, Collection[str]] = {
            "spot": step.spot,
            "levels": step.levels,
            "clear_levels": step.clear_levels,
            "missing": step.missing,
            "served": step.served,
            "unsupported": step.unsupported,
            "supported": step.supported,
            "stale": step.stale,
        }
        for option, symbols in named.items():
            for n, sym in enumerate(symbols):
                if sym not in SPECS:
                    at = ("steps", k, option, sym if isinstance(symbols, dict) else n)
                    known = ", ".join(SPECS)
                    message = f"unknown symbol {sym} (known: {known})"
                    raise ScenarioError(_located(path, doc, at, message, key=True))
        for sym, levels in step.levels.items():
            for name in levels:
                if name not in OVERRIDABLE:
                    raise ScenarioError(
                        _located(
                            path,
                            doc,
                            ("steps", k, "levels", sym, name),
                            f"unknown level {name} (known: {', '.join(sorted(OVERRIDABLE))})",
                            key=True,
                        )
                    )
    return scenario


def _located(
    path: Path, doc: Located, at: tuple[Any, ...], message: str, *, key: bool = False
) -> str:
    line, col = doc.where(at, key=key)
    where = ".".join(str(p) for p in at)
    return f"{path}:{line}:{col}: {where}: {message}"


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
        sim.venues_down.update(step.venues_down)
        sim.venues_down.difference_update(step.venues_up)

    return run
