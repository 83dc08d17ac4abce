"""Replay: scripted histories, statistics, parity with the live pipeline, and the command."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gexbot.cli import main
from gexbot.core.alerts.evaluate import index_rules
from gexbot.core.alerts.states import NotifyReason
from gexbot.core.market.snapshot import StressHistory, SymbolSnapshot
from gexbot.core.replay.result import STRESS_HISTORY_LEVELS, not_replayable
from gexbot.loops.cycle import Pipeline
from tests.conftest import threaded_sim
from tests.reference_replay import frames, history_to_snapshots, replay
from tests.rulekit import T0, bundle, make_rule, snapshot


def _series(
    spots: list[float | None],
    *,
    hvl: float | None = 100.0,
    step: float = 30,
    skip: set[int] | None = None,
) -> dict[str, list[SymbolSnapshot]]:
    kept = [(i, s) for i, s in enumerate(spots) if i not in (skip or set())]
    n = len(kept)
    stress = StressHistory(
        times=tuple(T0 + timedelta(seconds=i * step) for i, _ in kept),
        spot=tuple(s for _, s in kept),
        hvl=(hvl,) * n,
        call_wall=(110.0,) * n,
        put_wall=(90.0,) * n,
        net_gex=(1e8,) * n,
    )
    return {"BTCUSDT": history_to_snapshots("BTCUSDT", stress)}


def test_a_scripted_history_yields_the_expected_alerts_and_statistics() -> None:
    rule = make_rule("crosses", rule_id="x")
    spots: list[float | None] = [99, 101, 101, 99, 99, 99, 101, 101]  # 3 crosses
    result = replay([rule], frames(_series(spots)))
    assert [(a.at - T0).total_seconds() for a in result.alerts] == [30, 90, 180]
    assert [a.headline for a in result.alerts] == [
        "BTCUSDT crossed above HVL 100",
        "BTCUSDT crossed below HVL 100",
        "BTCUSDT crossed above HVL 100",
    ]
    (stats,) = result.stats([rule], ["BTCUSDT"])
    assert stats.alerts == 3
    assert stats.median_gap == 75
    assert stats.shortest_gap == 60
    assert stats.longest_quiet == 90  # 90 s → 180 s
    assert stats.per_day == pytest.approx(3 / (210 / 86400))
    assert result.snapshots == 8


def test_cooldown_and_for_behave_as_live_on_recorded_time() -> None:
    rule = make_rule("crosses", rule_id="x", cooldown=120.0)
    spots: list[float | None] = [99, 101, 99, 101, 101, 101, 99]
    alerts = replay([rule], frames(_series(spots))).alerts
    assert [(a.at - T0).total_seconds() for a in alerts] == [30, 180]  # 60 s and 90 s suppressed


def test_null_levels_and_missing_spot_fire_nothing() -> None:
    rule = make_rule("crosses", rule_id="x")
    assert replay([rule], frames(_series([99, 101, 99], hvl=None))).alerts == []
    result = replay([rule], frames(_series([99, None, 99])))
    assert result.alerts == []


def test_a_gap_in_history_is_replayed_as_missing_and_marked() -> None:
    rule = make_rule("crosses", rule_id="x")
    history = frames(_series([99, 99, 99, 101, 101, 101], skip={2, 3, 4}))
    assert any(not f.symbols["BTCUSDT"].usable for f in history)  # the gap reads as missing
    (alert,) = replay([rule], history).alerts
    assert alert.headline == "BTCUSDT crossed above HVL 100 (across a data gap)"


def test_rules_needing_levels_the_source_lacks_are_named() -> None:
    rules = [
        make_rule("crosses", rule_id="a"),
        make_rule("crosses", "odte.hvl", rule_id="b"),
        make_rule("outside", "expected_move_1sd", rule_id="c"),
    ]
    assert not_replayable(rules, STRESS_HISTORY_LEVELS) == {
        "b": ["odte.hvl"],
        "c": ["expected_move.lower_1sd", "expected_move.upper_1sd"],
    }


def test_parity_live_pipeline_and_replay_send_the_same_alerts(db: Engine) -> None:
    rules = [
        make_rule("crosses", rule_id="cross", buffer_pct=0.2),
        make_rule("near", "call_resistance", rule_id="near", within_pct=1.0),
        make_rule("below", "put_support", rule_id="below", hold=60.0, resolve=True),
        make_rule("moved", "call_resistance", rule_id="moved", by_pct=1.0),
    ]
    path = [
        (99, 103, 95),
        (100.5, 103, 95),
        (101, 102, 95),
        (102.5, 102, 96),
        (94, 104, 95),
        (94, 104, 95),
        (94, 104, 95),
        (97, 101, 95),
        (99.5, 101, 95),
        (101, 101, 95),
    ]
    bundles = [
        bundle(
            snapshot(
                s, at=T0 + timedelta(seconds=30 * i), hvl=100.0, call_resistance=cr, put_support=ps
            ),
            at=T0 + timedelta(seconds=30 * i),
        )
        for i, (s, cr, ps) in enumerate(path)
    ]
    pipeline = Pipeline(db, index_rules(rules))
    live = []
    for b in bundles:
        assert b.received_at is not None
        report = pipeline.run(b, now=b.received_at)
        live += [(e.at, e.rule_id, e.symbol, e.reason) for e in report.events]
    replayed = [(a.at, a.rule_id, a.symbol, a.reason) for a in replay(rules, bundles).alerts]
    assert live == replayed
    assert {r for _, _, _, r in live} >= {NotifyReason.FIRED, NotifyReason.RESOLVED}
    assert len(live) >= 5


# -- the command ----------------------------------------------------------------------------------


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server_url: str) -> Path:
    for name in list(os.environ):
        if name.startswith("GEXBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GEXBOT_API_URL", server_url)
    monkeypatch.setenv("GEXBOT_API_KEY", "k")
    monkeypatch.setenv("GEXBOT_RULES", str(Path(__file__).resolve().parents[1] / "rules"))
    return tmp_path


@pytest.fixture
def server_url() -> Iterator[str]:
    with threaded_sim() as url:
        yield url


def test_replay_command_from_the_simulated_stress_history(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["replay", "--days", "3", "--symbols", "btc", "--format", "json", "--timeline"]) == 0
    )
    body = json.loads(capsys.readouterr().out)
    assert body["source"] == "api"
    assert body["snapshots"] >= 3 * 288 - 1
    assert "odte-hvl-cross" in body["not_replayable"]
    rules = {s["rule"] for s in body["stats"]}
    assert "hvl-regime" in rules
    assert "odte-hvl-cross" not in rules
    assert sum(s["alerts"] for s in body["stats"]) == len(body["timeline"])
    assert main(["replay", "--days", "2", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0] == "rule,symbol,alerts,per_day,median_gap_s,shortest_gap_s,longest_quiet_s,first"
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--days", "31"], "--days must be 1 to 30 for --source api (got 31)"),
        (["--symbols", "DOGE"], "unknown symbol(s) DOGE"),
        (["--source", "store"], "no history for BTCUSDT, ETHUSDT, SOLUSDT, HYPEUSDT"),
        (["--rules", "nope.yaml"], "nope.yaml:1:1: GEXBOT_RULES: no such file or directory"),
    ],
)
def test_replay_bad_input_is_one_line_and_exit_1(
    env: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    assert main(["replay", *args]) == 1
    err = capsys.readouterr().err
    assert says in err
    assert "Traceback" not in err


def test_replay_from_the_bots_own_store(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gexbot.core.alerts.evaluate import index_rules as idx
    from gexbot.store.engine import make_engine, migrate

    engine = make_engine(f"sqlite:///{env / 'gexbot.db'}")
    migrate(engine)
    p = Pipeline(engine, idx([]))
    from datetime import UTC, datetime

    now = datetime.now(tz=UTC)
    for i, spot in enumerate([99, 101, 99, 101]):
        at = now - timedelta(minutes=10) + timedelta(seconds=30 * i)
        p.run(bundle(snapshot(spot, at=at, hvl=100.0), at=at), now=at)
    engine.dispose()
    rules = env / "r.yaml"
    rules.write_text(
        "channels: {t: {terminal: true}}\n"
        "rules: [{id: x, when: {crosses: hvl}, notify: t, cooldown: 0s}]\n"
    )
    assert (
        main(
            [
                "replay",
                "--source",
                "store",
                "--symbols",
                "BTC",
                "--rules",
                str(rules),
                "--format",
                "json",
            ]
        )
        == 0
    )
    body = json.loads(capsys.readouterr().out)
    assert body["stats"][0]["alerts"] == 3
