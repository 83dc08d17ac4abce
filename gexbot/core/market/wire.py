"""BackQuant v2 wire format: tolerant pydantic models and their translation into core types.

Both generations of the docs are accepted (backquant-v2.md §0): unknown fields are ignored,
absent equals null, `meta.version` is never pinned, and a wrongly typed level reads as null
instead of failing the whole symbol. Every number goes through `to_number`: the schema bounds
no number, so one too large for a float (`1e400`, a 400-digit integer) reads as null like any
other unusable value, and so does a number written as a string (the schema says number; a
guessed conversion is worse than a level the rules treat as unknown).

The parser's only exception is `WireFormatError`, raised when the envelope, `data`, or the
symbol lists that decide each symbol's status cannot be read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from gexbot.core.market.snapshot import (
    BundleSnapshot,
    Candle,
    FlipZone,
    Level,
    RankedStrike,
    StressHistory,
    SymbolSnapshot,
    SymbolStatus,
)
from gexbot.core.market.symbols import SYMBOL_SHAPE


class WireFormatError(ValueError):
    """The payload is not a BackQuant v2 envelope we can read (a transient upstream fault)."""


def to_number(value: Any) -> float | None:
    """A JSON number as a finite float; None for anything else (null, text, booleans,
    containers, infinities, NaN, integers beyond float range)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        f = float(value)
    except OverflowError:  # an integer with more than ~308 digits
        return None
    return f if math.isfinite(f) else None


def numbers(values: list[Any], n: int) -> list[float | None]:
    """`to_number` of each of the first `n` values, padded with None; finite floats (nearly
    every value of a long history) pass without a call."""
    out: list[float | None] = [
        v if type(v) is float and -math.inf < v < math.inf else to_number(v) for v in values[:n]
    ]
    return out + [None] * (n - len(out))


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 (with or without millis, `Z` or offset) or Unix seconds/millis; else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = to_number(value)
        if number is None:
            return None
        seconds = number / 1000 if number > 1e11 else number  # millis vs seconds
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        # A naive timestamp from this API is UTC (every documented example is).
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _dict_or_none(value: Any) -> Any:
    return value if isinstance(value, Mapping) else None


def _list_or_empty(value: Any) -> Any:
    return value if isinstance(value, list) else []


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _str_list(value: Any) -> list[str]:
    # These lists decide each symbol's status: one that cannot be read must not read as
    # "none invalid". A bare string is the one plausible other shape (a single symbol or CSV).
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise WireFormatError(f"expected a list of symbols, got {type(value).__name__}")
    return [v for v in value if isinstance(v, str)]


Num = Annotated[float | None, BeforeValidator(to_number)]
Time = Annotated[datetime | None, BeforeValidator(parse_time)]
Str = Annotated[str | None, BeforeValidator(_str_or_none)]
StrList = Annotated[list[str], BeforeValidator(_str_list)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AllExpiryWire(_Wire):
    hvl: Num = None
    call_resistance: Num = None
    call_wall_2: Num = None
    call_wall_3: Num = None
    put_support: Num = None
    put_wall_2: Num = None
    put_wall_3: Num = None


class OdteWire(_Wire):
    hvl: Num = None
    call_resistance: Num = None
    put_support: Num = None


class RankedLevelWire(_Wire):
    rank: Num = None
    strike: Num = None
    gex: Num = None


def _ranked_items(value: Any) -> list[Any]:
    return [v for v in _list_or_empty(value) if isinstance(v, Mapping)]


RankedList = Annotated[list[RankedLevelWire], BeforeValidator(_ranked_items)]


class RankedWire(_Wire):
    all_expiry_top_10: RankedList = []
    odte_top_10: RankedList = []


class MaxPainWire(_Wire):
    strike: Num = None
    value: Num = None


class ExpectedMoveWire(_Wire):
    upper_1sd: Num = None
    lower_1sd: Num = None
    upper_2sd: Num = None
    lower_2sd: Num = None


class SpotWire(_Wire):
    spot_price: Num = None
    perps_price: Num = None


class CandleWire(_Wire):
    datetime: Time = None
    open: Num = None
    high: Num = None
    low: Num = None
    close: Num = None
    volume: Num = None


_AsBlock = BeforeValidator(_dict_or_none)
AllExpiryBlock = Annotated[AllExpiryWire | None, _AsBlock]
OdteBlock = Annotated[OdteWire | None, _AsBlock]
RankedBlock = Annotated[RankedWire | None, _AsBlock]
MaxPainBlock = Annotated[MaxPainWire | None, _AsBlock]
ExpectedMoveBlock = Annotated[ExpectedMoveWire | None, _AsBlock]
SpotBlock = Annotated[SpotWire | None, _AsBlock]
AnyList = Annotated[list[Any], BeforeValidator(_list_or_empty)]


class EntryWire(_Wire):
    """A per-symbol entry of the multi endpoint, or the `data` of the single endpoint."""

    all_expiry: AllExpiryBlock = None
    odte: OdteBlock = None
    spot_price: Num = None
    computed_at: Time = None
    positioning: Str = None
    ranked: RankedBlock = None
    max_pain: MaxPainBlock = None
    expected_move: ExpectedMoveBlock = None
    gamma_flip_zones: AnyList = []
    spot: SpotBlock = None
    candles: AnyList = []


class MetaWire(_Wire):
    version: Str = None
    timestamp: Time = None
    request_id: Str = None
    symbol: Str = None
    spot_price: Num = None
    computed_at: Time = None
    freshness_seconds: Num = None
    rate_limit: Annotated[dict[str, Any] | None, BeforeValidator(_dict_or_none)] = None


def _str_or(default: str) -> BeforeValidator:
    return BeforeValidator(lambda v: v if isinstance(v, str) else default)


class ErrorWire(_Wire):
    code: Annotated[str, _str_or("UNKNOWN")] = "UNKNOWN"
    message: Annotated[str, _str_or("")] = ""
    details: Annotated[dict[str, Any] | None, BeforeValidator(_dict_or_none)] = None


class MultiDataWire(_Wire):
    results: Annotated[dict[str, Any], BeforeValidator(lambda v: v if isinstance(v, dict) else {})]
    requested: StrList = []
    served: StrList = []
    missing: StrList = []
    invalid: StrList = []


class StressHistoryWire(_Wire):
    timestamps: AnyList = []
    spot_price: AnyList = []
    hvl: AnyList = []
    call_wall: AnyList = []
    put_wall: AnyList = []
    net_gex: AnyList = []


# ---------------------------------------------------------------------------------------------
# Envelope


class Envelope(_Wire):
    """A decoded v2 envelope: either `data` (success) or `error` (failure), plus `meta`."""

    success: bool
    data: Any = None
    error: ErrorWire | None = None
    meta: MetaWire = MetaWire()


def parse_envelope(payload: Any) -> Envelope:
    """Read the envelope of a decoded JSON body; raise WireFormatError when it is not one."""
    if not isinstance(payload, Mapping):
        raise WireFormatError(f"expected a JSON object, got {type(payload).__name__}")
    success = payload.get("success")
    meta_raw = payload.get("meta")
    meta = MetaWire.model_validate(meta_raw) if isinstance(meta_raw, Mapping) else MetaWire()
    if success is False or (success is None and "error" in payload):
        err = payload.get("error")
        error = ErrorWire.model_validate(err) if isinstance(err, Mapping) else ErrorWire()
        return Envelope(success=False, error=error, meta=meta)
    if success is not True and "data" not in payload:
        raise WireFormatError("envelope has neither `success` nor `data`")
    if "data" not in payload:
        raise WireFormatError("success envelope without `data`")
    return Envelope(success=True, data=payload["data"], meta=meta)


# ---------------------------------------------------------------------------------------------
# Into core types


def _ranked(rows: Sequence[RankedLevelWire]) -> tuple[RankedStrike, ...]:
    out = []
    for i, row in enumerate(rows, start=1):
        if row.strike is None or row.gex is None:
            continue
        rank = int(row.rank) if row.rank is not None else i
        out.append(RankedStrike(rank=rank, strike=row.strike, gex=row.gex))
    return tuple(out)


def _zones(items: Sequence[Any]) -> tuple[FlipZone, ...]:
    zones = []
    for item in items:
        if isinstance(item, Mapping):
            zones.append(
                FlipZone(
                    lower=to_number(item.get("lower_strike", item.get("lower"))),
                    upper=to_number(item.get("upper_strike", item.get("upper"))),
                    flip=to_number(item.get("flip_strike", item.get("level", item.get("strike")))),
                    direction=_str_or_none(item.get("direction")),
                )
            )
        else:
            # Zones are undocumented (open question 1): a bare number is read as a flip point.
            flip = to_number(item)
            if flip is not None:
                zones.append(FlipZone(lower=None, upper=None, flip=flip, direction=None))
    return tuple(zones)


def _candles(items: Sequence[Any]) -> tuple[Candle, ...]:
    out = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        c = CandleWire.model_validate(item)
        if c.datetime is None or None in (c.open, c.high, c.low, c.close):
            continue
        out.append(
            Candle(
                at=c.datetime,
                open=c.open or 0.0,
                high=c.high or 0.0,
                low=c.low or 0.0,
                close=c.close or 0.0,
                volume=c.volume or 0.0,
            )
        )
    return tuple(out)


def entry_to_snapshot(
    symbol: str,
    raw: Mapping[str, Any],
    *,
    meta: MetaWire | None = None,
) -> SymbolSnapshot:
    """Translate one entry (multi) or one `data` object (single) into a snapshot.

    The single endpoint carries spot and `computed_at` in `meta` (and `data.spot`), the multi
    endpoint in the entry; both places are read, the entry winning.
    """
    entry = EntryWire.model_validate(raw)
    ae = entry.all_expiry or AllExpiryWire()
    od = entry.odte or OdteWire()
    em = entry.expected_move or ExpectedMoveWire()
    mp = entry.max_pain or MaxPainWire()
    levels: dict[Level, float | None] = {
        Level.HVL: ae.hvl,
        Level.CALL_RESISTANCE: ae.call_resistance,
        Level.CALL_WALL_2: ae.call_wall_2,
        Level.CALL_WALL_3: ae.call_wall_3,
        Level.PUT_SUPPORT: ae.put_support,
        Level.PUT_WALL_2: ae.put_wall_2,
        Level.PUT_WALL_3: ae.put_wall_3,
        Level.ODTE_HVL: od.hvl,
        Level.ODTE_CALL_RESISTANCE: od.call_resistance,
        Level.ODTE_PUT_SUPPORT: od.put_support,
        Level.MAX_PAIN: mp.strike,
        Level.EM_UPPER_1SD: em.upper_1sd,
        Level.EM_LOWER_1SD: em.lower_1sd,
        Level.EM_UPPER_2SD: em.upper_2sd,
        Level.EM_LOWER_2SD: em.lower_2sd,
    }
    spot_block = entry.spot or SpotWire()
    spot = entry.spot_price
    if spot is None:
        spot = spot_block.spot_price
    if spot is None and meta is not None:
        spot = meta.spot_price
    computed_at = entry.computed_at
    if computed_at is None and meta is not None:
        computed_at = meta.computed_at
    ranked = entry.ranked or RankedWire()
    return SymbolSnapshot(
        symbol=symbol,
        status=SymbolStatus.OK,
        spot=spot,
        computed_at=computed_at,
        levels=MappingProxyType(levels),
        max_pain_value=mp.value,
        ranked_all=_ranked(ranked.all_expiry_top_10),
        ranked_odte=_ranked(ranked.odte_top_10),
        zones=_zones(entry.gamma_flip_zones),
        positioning=entry.positioning,
        perps_price=spot_block.perps_price,
        candles=_candles(entry.candles),
    )


def multi_to_snapshots(data: Any, requested: Sequence[str]) -> dict[str, SymbolSnapshot]:
    """Translate a multi `data` object into snapshots for `requested`, in that order.

    A requested symbol the response does not mention at all is MISSING; a symbol listed as
    invalid is INVALID even if (against the docs) it also has a result.
    """
    if not isinstance(data, Mapping):
        raise WireFormatError("multi response `data` is not an object")
    if "results" not in data or not isinstance(data["results"], Mapping):
        raise WireFormatError("multi response has no `results` object")
    try:
        wire = MultiDataWire.model_validate(data)
    except ValidationError as exc:  # only reachable on exotic payloads; keep the contract
        raise WireFormatError(f"unreadable multi data: {exc.error_count()} problems") from exc
    invalid = set(wire.invalid)
    out: dict[str, SymbolSnapshot] = {}
    # An echoed name that is not even shaped like a symbol (`ESC[2J`) is noise, not a symbol.
    echoed = [s for s in wire.requested if SYMBOL_SHAPE.fullmatch(s)]
    order = list(dict.fromkeys([*requested, *echoed]))
    for symbol in order:
        if symbol in invalid:
            out[symbol] = SymbolSnapshot(symbol=symbol, status=SymbolStatus.INVALID)
            continue
        raw = wire.results.get(symbol)
        if isinstance(raw, Mapping):
            out[symbol] = entry_to_snapshot(symbol, raw)
        else:
            out[symbol] = SymbolSnapshot(symbol=symbol, status=SymbolStatus.MISSING)
    return out


def parse_multi(
    env: Envelope, requested: Sequence[str], *, received_at: datetime, stale_after: float
) -> BundleSnapshot:
    """One multi response as the bundle the rest of the bot sees: every symbol in its final
    status (staleness included, judged at `received_at`), and both clocks named."""
    symbols = {
        sym: _final(_spot_or_missing(snap), received_at, stale_after)
        for sym, snap in multi_to_snapshots(env.data, requested).items()
    }
    return BundleSnapshot(
        received_at=received_at,
        upstream_at=env.meta.timestamp,
        symbols=MappingProxyType(symbols),
        request_ids=(env.meta.request_id,) if env.meta.request_id else (),
        api_version=env.meta.version,
    )


def parse_single(
    env: Envelope, symbol: str, *, received_at: datetime, stale_after: float
) -> SymbolSnapshot:
    """One `/v2/gex/levels` response as a snapshot in its final status (no spot: MISSING)."""
    if not isinstance(env.data, Mapping):
        raise WireFormatError("levels payload `data` is not an object")
    snap = _spot_or_missing(entry_to_snapshot(symbol, env.data, meta=env.meta))
    return _final(snap, received_at, stale_after)


def _spot_or_missing(snap: SymbolSnapshot) -> SymbolSnapshot:
    """A served entry without a readable spot is MISSING, on either endpoint: no rule can
    place spot against a level without it."""
    if snap.status is SymbolStatus.OK and snap.spot is None:
        return replace(snap, status=SymbolStatus.MISSING)
    return snap


def merge_bundles(parts: Sequence[BundleSnapshot]) -> BundleSnapshot:
    """Bundles of one poll (8 symbols per request) as one, in request order; the first
    answer for a symbol wins, and the times are the last response's."""
    if not parts:
        raise ValueError("merge_bundles needs at least one bundle")
    if len(parts) == 1:
        return parts[0]
    symbols: dict[str, SymbolSnapshot] = {}
    for part in parts:
        for sym, snap in part.symbols.items():
            symbols.setdefault(sym, snap)
    last = parts[-1]
    return BundleSnapshot(
        received_at=last.received_at,
        upstream_at=next((p.upstream_at for p in reversed(parts) if p.upstream_at), None),
        symbols=MappingProxyType(symbols),
        request_ids=tuple(r for p in parts for r in p.request_ids),
        api_version=next((p.api_version for p in reversed(parts) if p.api_version), None),
    )


#: How far ahead of our clock `computed_at` may be (clock skew) before the data is suspect.
FUTURE_TOLERANCE = 60.0


def _final(snap: SymbolSnapshot, now: datetime, stale_after: float) -> SymbolSnapshot:
    """A served symbol whose data is older than `stale_after` seconds is STALE.

    One without `computed_at` is STALE too: alerts that move money must not act on data of
    unknown age; so is one computed more than FUTURE_TOLERANCE ahead of our clock (year 9999
    would otherwise never go stale).
    """
    age = snap.age_seconds(now)
    if snap.status is SymbolStatus.OK and (
        age is None or age > stale_after or age < -FUTURE_TOLERANCE
    ):
        return replace(snap, status=SymbolStatus.STALE)
    return snap


def stress_history(data: Any) -> StressHistory:
    """Translate `/v2/gex/stress-history` data (parallel arrays) into columns, oldest first.

    Rows without a readable timestamp are dropped; arrays of unequal length are read up to the
    timestamps and padded with None, because a shorter series is more likely than a shifted one.
    """
    if not isinstance(data, Mapping):
        raise WireFormatError("stress-history `data` is not an object")
    wire = StressHistoryWire.model_validate(data)
    n = len(wire.timestamps)
    columns = [
        numbers(c, n)
        for c in (wire.spot_price, wire.hvl, wire.call_wall, wire.put_wall, wire.net_gex)
    ]
    stamped = [
        (at, i) for i, raw in enumerate(wire.timestamps) if (at := parse_time(raw)) is not None
    ]
    stamped.sort()  # served oldest first (backquant-v2.md §8.5): usually one pass, no moves
    order = [i for _, i in stamped]
    if order != list(range(n)):
        columns = [[c[i] for i in order] for c in columns]
    spot, hvl, call, put, gex = (tuple(c) for c in columns)
    return StressHistory(tuple(at for at, _ in stamped), spot, hvl, call, put, gex)
