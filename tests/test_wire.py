"""Parsing BackQuant v2 payloads into core snapshots: examples, tolerance, and a property."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gexbot.core.market.snapshot import Level, SymbolStatus
from gexbot.core.market.wire import (
    WireFormatError,
    entry_to_snapshot,
    merge_bundles,
    multi_to_snapshots,
    parse_envelope,
    parse_multi,
    parse_single,
    parse_time,
    stress_history,
    to_number,
)
from tests.conftest import EXAMPLES
from tests.schema import MULTI_VALIDATOR, load_json


def test_full_example_parses_every_level_and_include() -> None:
    env = parse_envelope(load_json(EXAMPLES / "multi-full.json"))
    snaps = multi_to_snapshots(env.data, ["BTCUSDT", "ETHUSDT", "SOLUSDT", "HYPEUSDT"])
    btc = snaps["BTCUSDT"]
    assert btc.status is SymbolStatus.OK
    assert btc.spot == 81342.6
    assert btc.computed_at == datetime(2026, 5, 14, 9, 29, 58, tzinfo=UTC)
    assert btc.level(Level.HVL) == 79500.0
    assert btc.level(Level.CALL_WALL_2) == 90000.0
    assert btc.level(Level.ODTE_PUT_SUPPORT) == 80000.0
    assert btc.level(Level.MAX_PAIN) == 81000.0
    assert btc.max_pain_value == 18400000.0
    assert btc.level(Level.EM_LOWER_2SD) == 77510.7
    assert btc.ranked_all[0].strike == 85000.0
    assert btc.ranked_all[0].rank == 1
    assert len(btc.ranked_all) == 10
    assert btc.zones[0].flip == 79500.0
    assert btc.zones[0].direction == "negative_to_positive"
    assert btc.positioning == "std"
    assert env.meta.version == "2.6"


def test_full_example_null_odte_block_and_null_max_pain_read_as_none() -> None:
    env = parse_envelope(load_json(EXAMPLES / "multi-full.json"))
    hype = multi_to_snapshots(env.data, ["HYPEUSDT"])["HYPEUSDT"]
    assert hype.status is SymbolStatus.OK
    assert hype.level(Level.ODTE_HVL) is None
    assert hype.level(Level.MAX_PAIN) is None
    assert hype.ranked_odte == ()
    assert hype.level(Level.HVL) is not None


def test_partial_example_marks_missing_and_invalid_in_request_order() -> None:
    env = parse_envelope(load_json(EXAMPLES / "multi-partial.json"))
    requested = ["BTCUSDT", "ETHUSDT", "HYPEUSDT", "DOGEUSDT"]
    snaps = multi_to_snapshots(env.data, requested)
    assert list(snaps) == requested
    assert [s.status for s in snaps.values()] == [
        SymbolStatus.OK,
        SymbolStatus.OK,
        SymbolStatus.MISSING,
        SymbolStatus.INVALID,
    ]
    # Flow positioning: secondary call walls are null, not zero.
    assert snaps["BTCUSDT"].level(Level.CALL_WALL_2) is None
    # Not-requested includes are absent: no ranked rows, no zones.
    assert snaps["BTCUSDT"].ranked_all == ()
    assert snaps["BTCUSDT"].zones == ()


def test_error_example_is_read_as_error_envelope() -> None:
    env = parse_envelope(load_json(EXAMPLES / "error-429.json"))
    assert env.success is False
    assert env.error is not None
    assert env.error.code == "RATE_LIMIT_EXCEEDED"
    assert env.meta.request_id == "req_c41e8a07d95b4b2e9f3a1c6d70e8b512"


def test_unknown_fields_are_ignored_everywhere() -> None:
    payload = load_json(EXAMPLES / "multi-full.json")
    payload["surprise"] = {"x": 1}
    payload["meta"]["new_meta_field"] = [1, 2]
    payload["data"]["new_list"] = []
    entry = payload["data"]["results"]["BTCUSDT"]
    entry["all_expiry"]["gamma_wall_9"] = 1.0
    entry["vanna"] = {"a": 1}
    env = parse_envelope(payload)
    snap = multi_to_snapshots(env.data, ["BTCUSDT"])["BTCUSDT"]
    assert snap.level(Level.HVL) == 79500.0


@pytest.mark.parametrize(
    "bad_value", [None, "n/a", True, [], {"v": 1}], ids=["null", "text", "bool", "list", "obj"]
)
def test_a_wrongly_typed_level_reads_as_null_without_failing_the_symbol(bad_value: Any) -> None:
    raw: dict[str, Any] = {
        "all_expiry": {"hvl": bad_value, "call_resistance": 85000},
        "odte": {},
        "spot_price": 81000,
    }
    snap = entry_to_snapshot("BTCUSDT", raw)
    assert snap.level(Level.HVL) is None
    assert snap.level(Level.CALL_RESISTANCE) == 85000.0


def test_numbers_written_as_strings_read_as_null() -> None:
    # The schema says number: a string is wrongly typed, and reads as null like any other.
    snap = entry_to_snapshot("BTCUSDT", {"all_expiry": {"hvl": "79500.5"}, "spot_price": "81000"})
    assert snap.level(Level.HVL) is None
    assert snap.spot is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e400", None),  # json reads it as inf
        ("-1e400", None),
        ("1" + "0" * 400, None),  # an integer no float can hold
        ("-0.0", -0.0),
        ("5e-324", 5e-324),  # the smallest subnormal
        ("1.7976931348623157e308", 1.7976931348623157e308),
        ("81000", 81000.0),
    ],
)
def test_numbers_beyond_float_range_read_as_null_and_the_rest_exactly(
    text: str, expected: float | None
) -> None:
    raw = json.loads(
        f'{{"all_expiry": {{"hvl": {text}}}, "spot_price": {text}, '
        f'"computed_at": {text}, "ranked": {{"all_expiry_top_10": '
        f'[{{"rank": {text}, "strike": 1, "gex": 1}}]}}}}'
    )
    snap = entry_to_snapshot("BTCUSDT", raw)
    assert snap.level(Level.HVL) == expected
    assert snap.spot == expected
    assert to_number(raw["spot_price"]) == expected


@pytest.mark.parametrize("field", ["invalid", "missing", "served", "requested"])
def test_a_symbol_list_that_is_not_a_list_is_a_wire_format_error(field: str) -> None:
    data: dict[str, Any] = {"results": {"BTCUSDT": {}}, field: 7}
    with pytest.raises(WireFormatError):
        multi_to_snapshots(data, ["BTCUSDT"])


def test_a_symbol_list_written_as_a_string_is_read_as_csv() -> None:
    data = {"results": {"BTCUSDT": {"spot_price": 1.0}}, "invalid": "BTCUSDT, DOGEUSDT"}
    snaps = multi_to_snapshots(data, ["BTCUSDT", "DOGEUSDT"])
    assert snaps["BTCUSDT"].status is SymbolStatus.INVALID
    assert snaps["DOGEUSDT"].status is SymbolStatus.INVALID


def test_an_error_envelope_with_odd_types_is_still_an_error() -> None:
    env = parse_envelope({"success": False, "error": {"code": 500, "message": ["x"]}})
    assert not env.success
    assert env.error is not None
    assert env.error.code == "UNKNOWN"


def test_missing_all_expiry_and_odte_blocks_read_as_all_null() -> None:
    snap = entry_to_snapshot("BTCUSDT", {"spot_price": 1.0})
    assert all(v is None for v in snap.levels.values())


def test_single_symbol_data_takes_spot_and_time_from_meta_and_reads_candles() -> None:
    payload = {
        "success": True,
        "data": {
            "all_expiry": {"hvl": 67000.0},
            "odte": {"hvl": None},
            "spot": {"spot_price": 67213.5, "perps_price": 67240.0},
            "candles": [
                {
                    "datetime": "2026-04-29T11:30:00Z",
                    "open": 1,
                    "high": 2,
                    "low": 0.5,
                    "close": 1.5,
                    "volume": 9,
                },
                {"datetime": "garbage", "open": 1, "high": 1, "low": 1, "close": 1, "volume": 1},
            ],
        },
        "meta": {
            "version": "2.0",
            "timestamp": "2026-04-29T12:00:00.123Z",
            "symbol": "BTCUSDT",
            "spot_price": 67213.5,
            "computed_at": "2026-04-29T11:59:48.000Z",
            "freshness_seconds": 12.0,
        },
    }
    env = parse_envelope(payload)
    snap = entry_to_snapshot("BTCUSDT", env.data, meta=env.meta)
    assert snap.spot == 67213.5
    assert snap.perps_price == 67240.0
    assert snap.computed_at == datetime(2026, 4, 29, 11, 59, 48, tzinfo=UTC)
    assert len(snap.candles) == 1
    assert snap.candles[0].close == 1.5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-04-30T11:59:48Z", datetime(2026, 4, 30, 11, 59, 48, tzinfo=UTC)),
        ("2026-04-30T11:59:48.000Z", datetime(2026, 4, 30, 11, 59, 48, tzinfo=UTC)),
        ("2026-04-30T13:59:48+02:00", datetime(2026, 4, 30, 11, 59, 48, tzinfo=UTC)),
        ("2026-04-30T11:59:48", datetime(2026, 4, 30, 11, 59, 48, tzinfo=UTC)),
        (1777550388, datetime(2026, 4, 30, 11, 59, 48, tzinfo=UTC)),
        (1777550388000, datetime(2026, 4, 30, 11, 59, 48, tzinfo=UTC)),
        ("yesterday", None),
        (None, None),
    ],
)
def test_timestamps_in_every_plausible_format(text: Any, expected: datetime | None) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "payload",
    [[], "x", 3, {"success": True}, {"meta": {}}, {"success": "yes"}],
    ids=["list", "str", "int", "no-data", "no-success", "odd-success"],
)
def test_non_envelopes_raise_wire_format_error(payload: Any) -> None:
    with pytest.raises(WireFormatError):
        parse_envelope(payload)


def test_multi_data_without_results_is_a_wire_format_error() -> None:
    with pytest.raises(WireFormatError):
        multi_to_snapshots({"requested": ["BTCUSDT"]}, ["BTCUSDT"])


def test_a_requested_symbol_absent_from_the_response_is_missing() -> None:
    data: dict[str, Any] = {"results": {}, "requested": [], "missing": [], "invalid": []}
    assert multi_to_snapshots(data, ["BTCUSDT"])["BTCUSDT"].status is SymbolStatus.MISSING


def test_an_invalid_symbol_with_a_result_key_is_still_invalid() -> None:
    # Open question 6: whether invalid symbols are keys in `results`; either way, invalid.
    data = {"results": {"DOGEUSDT": None}, "invalid": ["DOGEUSDT"]}
    assert multi_to_snapshots(data, ["DOGEUSDT"])["DOGEUSDT"].status is SymbolStatus.INVALID


NOW = datetime(2026, 5, 14, 9, 30, tzinfo=UTC)


def _served(age_seconds: float | None, *, single: bool = False, spot: object = 1.0) -> SymbolStatus:
    """The status parsing gives an entry computed `age_seconds` before it was received."""
    raw: dict[str, Any] = {"all_expiry": {}, "odte": {}, "spot_price": spot}
    if age_seconds is not None:
        raw["computed_at"] = (NOW - timedelta(seconds=age_seconds)).isoformat()
    if single:
        env = parse_envelope({"success": True, "data": raw, "meta": {}})
        return parse_single(env, "BTCUSDT", received_at=NOW, stale_after=90).status
    body = {"success": True, "data": {"results": {"BTCUSDT": raw}}, "meta": {}}
    bundle = parse_multi(parse_envelope(body), ["BTCUSDT"], received_at=NOW, stale_after=90)
    return bundle.symbols["BTCUSDT"].status


@pytest.mark.parametrize("single", [False, True])
@pytest.mark.parametrize(
    ("age", "status"),
    [
        (10.0, SymbolStatus.OK),
        (90.0, SymbolStatus.OK),
        (91.0, SymbolStatus.STALE),
        (None, SymbolStatus.STALE),  # data of unknown age is not acted on
        (-30.0, SymbolStatus.OK),  # a little clock skew
        (-61.0, SymbolStatus.STALE),  # from the future: suspect
        (-(datetime(9999, 1, 1, tzinfo=UTC) - NOW).total_seconds(), SymbolStatus.STALE),
    ],
)
def test_parsing_judges_staleness_by_computed_at_at_receipt(
    age: float | None, status: SymbolStatus, single: bool
) -> None:
    assert _served(age, single=single) is status


@pytest.mark.parametrize("single", [False, True])
@pytest.mark.parametrize("spot", [None, "n/a", {"x": 1}, [], "nan", True])
def test_an_unreadable_spot_is_missing_on_either_endpoint(single: bool, spot: object) -> None:
    assert _served(10.0, single=single, spot=spot) is SymbolStatus.MISSING


def test_a_bundle_names_both_clocks() -> None:
    body = {
        "success": True,
        "data": {"results": {}, "invalid": ["DOGEUSDT"]},
        "meta": {"timestamp": "2026-05-14T09:29:58Z", "request_id": "req-1", "version": "2.0"},
    }
    bundle = parse_multi(parse_envelope(body), ["DOGEUSDT"], received_at=NOW, stale_after=90)
    assert bundle.received_at == NOW
    assert bundle.upstream_at == datetime(2026, 5, 14, 9, 29, 58, tzinfo=UTC)
    assert (bundle.request_ids, bundle.api_version) == (("req-1",), "2.0")
    merged = merge_bundles([bundle, replace(bundle, received_at=NOW + timedelta(seconds=1))])
    assert merged.received_at == NOW + timedelta(seconds=1)
    assert merged.request_ids == ("req-1", "req-1")


def test_a_single_answer_without_spot_is_missing() -> None:
    env = parse_envelope({"success": True, "data": {"all_expiry": {}}, "meta": {}})
    snap = parse_single(env, "BTCUSDT", received_at=NOW, stale_after=90)
    assert snap.status is SymbolStatus.MISSING


def test_stress_history_arrays_become_columns_and_tolerate_ragged_ones() -> None:
    data = {
        "timestamps": ["2026-05-01T00:05:00Z", "2026-05-01T00:00:00Z", "bad"],
        "spot_price": [2.0, 1.0, 3.0],
        "hvl": [None, 0.5],
        "call_wall": [3.0],
        "put_wall": [],
        "net_gex": [1e8, -2e7, 0],
    }
    history = stress_history(data)
    assert history.spot == (1.0, 2.0)  # sorted oldest first, bad row dropped
    assert history.times == (
        datetime(2026, 5, 1, 0, 0, tzinfo=UTC),
        datetime(2026, 5, 1, 0, 5, tzinfo=UTC),
    )
    assert history.hvl == (0.5, None)
    assert history.call_wall == (None, 3.0)
    assert history.put_wall == (None, None)
    assert history.net_gex == (-2e7, 1e8)


# ---------------------------------------------------------------------------------------------
# Property: any payload valid under BackQuant's own schema parses, or raises WireFormatError.
# The strategy follows MultiGexLevelsResponse; each example is checked against the schema too.

# The schema bounds no number: huge integers, infinities (what json reads for `1e400`), negative
# zero and subnormals are all valid.
_num = (
    st.none()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**420)
    | st.integers(min_value=-(10**420), max_value=-(10**300))
    | st.floats(allow_nan=False, allow_infinity=True, allow_subnormal=True)
    | st.sampled_from([-0.0, 5e-324, 1.7976931348623157e308])
)
_json = st.recursive(
    st.none() | st.booleans() | _num | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def _optional(keys: list[str], value: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=dict.fromkeys(keys, value))


_ranked_row = st.fixed_dictionaries(
    {
        "rank": st.integers(),
        "strike": _num.filter(lambda v: v is not None),
        "gex": _num.filter(lambda v: v is not None),
        "abs_gex": _num.filter(lambda v: v is not None),
    }
)
_entry = st.fixed_dictionaries(
    {
        "all_expiry": _optional(
            [
                "hvl",
                "call_resistance",
                "call_wall_2",
                "call_wall_3",
                "put_support",
                "put_wall_2",
                "put_wall_3",
            ],
            _num,
        ),
        "odte": _optional(["hvl", "call_resistance", "put_support"], _num),
    },
    optional={
        "spot_price": _num,
        "computed_at": st.none() | st.text(max_size=30) | st.just("2026-05-14T09:29:58Z"),
        "ranked": st.none()
        | _optional(["all_expiry_top_10", "odte_top_10"], st.lists(_ranked_row, max_size=3)),
        "max_pain": st.none() | _optional(["strike", "value"], _num),
        "expected_move": st.none()
        | _optional(["upper_1sd", "lower_1sd", "upper_2sd", "lower_2sd"], _num),
        "gamma_flip_zones": st.none() | st.lists(_json, max_size=3),
        "positioning": _json,
    },
)
_symbol = st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT", "HYPEUSDT", "DOGEUSDT", "btcusdt"])
_multi_payload = st.fixed_dictionaries(
    {
        "data": st.fixed_dictionaries(
            {
                "results": st.dictionaries(_symbol | st.text(max_size=6), st.none() | _entry),
                "requested": st.lists(_symbol, max_size=5),
                "served": st.lists(_symbol, max_size=5),
                "missing": st.lists(_symbol, max_size=5),
                "invalid": st.lists(_symbol, max_size=5),
            }
        ),
        "meta": st.fixed_dictionaries(
            {"version": st.just("2.0"), "timestamp": st.text(max_size=30)},
            optional={"request_id": st.none() | st.text(max_size=10), "rate_limit": st.none()},
        ),
    },
    optional={"success": st.just(True)},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=_multi_payload)
def test_any_schema_valid_multi_payload_parses_without_unexpected_errors(
    payload: dict[str, Any],
) -> None:
    MULTI_VALIDATOR.validate(payload)  # the example really is schema-valid
    # A schema-valid payload is read: no exception at all, WireFormatError included.
    env = parse_envelope(payload)
    requested = list(payload["data"]["requested"]) + list(payload["data"]["results"])
    snaps = multi_to_snapshots(env.data, requested)
    invalid = set(payload["data"]["invalid"])
    for sym, snap in snaps.items():
        assert snap.symbol == sym
        assert all(v is None or math.isfinite(v) for v in snap.levels.values())
        raw = payload["data"]["results"].get(sym)
        if sym in invalid:
            assert snap.status is SymbolStatus.INVALID
        elif raw is None:
            assert snap.status is SymbolStatus.MISSING
        else:
            for name, value in raw["all_expiry"].items():
                assert snap.level(Level(name)) == _expected_number(value)


def _expected_number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int) and abs(value) > 10**308:
        return None
    return float(value) if math.isfinite(float(value)) else None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=_json | st.fixed_dictionaries({"success": _json, "data": _json, "meta": _json}))
def test_any_json_at_all_parses_or_raises_only_wire_format_error(payload: Any) -> None:
    try:
        env = parse_envelope(payload)
        multi_to_snapshots(env.data, ["BTCUSDT"])
        stress_history(env.data)
        if isinstance(env.data, dict):
            entry_to_snapshot("BTCUSDT", env.data, meta=env.meta)
    except WireFormatError:
        pass
