"""Rule files: the examples load, every broken file reports FILE:LINE:COL, hot reload."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from gexbot.cli import main
from gexbot.core.language.model import ChannelKind, ConditionKind, Severity
from gexbot.core.language.rulefile import (
    RulesError,
    build_ruleset,
    parse_rule_file,
    rule_file_json_schema,
)
from gexbot.loops.rules import RulesWatcher, load_rules

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "rules"
BROKEN = Path(__file__).resolve().parent / "rules_broken"
CASES = sorted([*BROKEN.glob("*.yaml"), BROKEN / "duplicate-id"])


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GEXBOT_"):
            monkeypatch.delenv(name)


def _expected(case: Path) -> str:
    files = [case] if case.is_file() else sorted(case.glob("*.yaml"))
    for f in files:
        first = f.read_text().splitlines()[0]
        if first.startswith("# expect: "):
            return first.removeprefix("# expect: ")
    raise AssertionError(f"{case} has no expect line")


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_check_reports_each_broken_file_with_its_location(
    case: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(BROKEN)
    monkeypatch.setenv("GEXBOT_RULES", case.name)
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert any(line.startswith(_expected(case)) for line in err.splitlines()), err
    assert "Traceback" not in err


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_file_is_valid_and_points_editors_at_the_schema(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=./schema.json")
    parsed = parse_rule_file(text, str(path))
    assert parsed.problems == []


def test_the_examples_load_together_as_a_desk_would_use_them() -> None:
    ruleset = load_rules(EXAMPLES, setting="GEXBOT_RULES")
    kinds = {r.condition.kind for r in ruleset.rules}
    assert kinds == set(ConditionKind)
    assert ruleset.warnings_notify == ("tty",)
    hvl = next(r for r in ruleset.rules if r.id == "hvl-regime")
    assert hvl.cooldown == 900
    assert hvl.severity is Severity.CRITICAL
    assert hvl.condition.buffer_pct == 0.1


def test_check_passes_on_the_examples(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: 11 rules, 1 channel, 4 of 4 symbols covered")


def test_check_reports_settings_and_rules_problems_together(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GEXBOT_SYMBOLS", "BTCUSDT,DOGEUSDT")
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert "GEXBOT_SYMBOLS: DOGEUSDT is not a supported symbol" in err
    assert "rules:1:1: GEXBOT_RULES: no such file or directory" in err


def test_an_empty_rules_directory_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(BROKEN)
    monkeypatch.setenv("GEXBOT_RULES", "empty-dir")
    assert main(["check"]) == 1
    assert "GEXBOT_RULES: no *.yaml rule files in this directory" in capsys.readouterr().err


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = """
channels: {tty: {terminal: true}}
defaults: {notify: tty}
rules:
  - id: a
    when: {crosses: hvll}
  - id: b
    when: {near: put_support}
  - id: c
    when: {above: hvl}
    message: "{spot} {nope}"
"""
    with pytest.raises(RulesError) as info:
        build_ruleset([parse_rule_file(text, "f.yaml")])
    lines = [str(p) for p in info.value.problems]
    assert [line.split(": ")[0] for line in lines] == ["f.yaml:6:21", "f.yaml:8:18", "f.yaml:11:14"]


def test_the_terminal_channel_is_also_read_by_its_older_name() -> None:
    for key in ("terminal", "console"):
        text = (
            f"channels: {{t: {{{key}: true}}}}\n"
            "rules: [{id: r, when: {crosses: hvl}, notify: t}]\n"
        )
        ruleset = build_ruleset([parse_rule_file(text, "f.yaml")])
        assert ruleset.channels["t"].kind is ChannelKind.TERMINAL
    with pytest.raises(RulesError, match="exactly one of"):
        build_ruleset(
            [parse_rule_file("channels: {t: {terminal: true, console: true}}\n", "f.yaml")]
        )


def test_a_channel_is_resolved_across_files_and_defaults_stay_per_file() -> None:
    a = parse_rule_file("channels: {desk: {slack: '#x'}}\n", "a.yaml")
    b = parse_rule_file(
        "defaults: {notify: desk, cooldown: 5m}\nrules: [{id: r, when: {crosses: hvl}}]\n",
        "b.yaml",
    )
    ruleset = build_ruleset([a, b])
    assert ruleset.rules[0].notify == ("desk",)
    assert ruleset.rules[0].cooldown == 300


def test_channel_defined_twice_differently_is_an_error() -> None:
    a = parse_rule_file("channels: {desk: {slack: '#x'}}\n", "a.yaml")
    b = parse_rule_file("channels: {desk: {slack: '#y'}}\n", "b.yaml")
    msg = re.escape("channel `desk` is defined differently at a.yaml:1:12")
    with pytest.raises(RulesError, match=msg):
        build_ruleset([a, b])


def test_schema_command_prints_the_committed_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == rule_file_json_schema()
    committed = json.loads((EXAMPLES / "schema.json").read_text())
    assert committed == printed, "run: gexbot schema > rules/schema.json"
    assert "rules" in printed["properties"]
    assert "for" in json.dumps(printed)


# -- hot reload ------------------------------------------------------------------------------


def _write(path: Path, body: str) -> None:
    path.write_text("channels: {tty: {terminal: true}}\ndefaults: {notify: tty}\n" + body)


def test_watcher_reloads_changed_files_and_reports_changed_rules(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    _write(f, "rules:\n  - {id: a, when: {crosses: hvl}}\n  - {id: b, when: {above: hvl}}\n")
    watcher = RulesWatcher(
        tmp_path,
        load_rules(tmp_path, setting="GEXBOT_RULES"),
        universe=["BTCUSDT"],
        setting="GEXBOT_RULES",
    )
    assert not watcher.changed_on_disk()
    _write(
        f,
        "rules:\n  - {id: a, when: {crosses: hvl}}  # a comment\n"
        "  - {id: b, when: {above: hvl}, cooldown: 1m}\n  - {id: c, when: {below: hvl}}\n",
    )
    assert watcher.changed_on_disk()
    reload = watcher.reload()
    assert reload.accepted
    assert reload.changed_ids == {"b", "c"}  # `a` only moved/commented: keeps its state
    assert [r.id for r in watcher.rules.rules] == ["a", "b", "c"]
    assert not watcher.changed_on_disk()


def test_watcher_refuses_an_invalid_version_and_keeps_the_old_rules(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    _write(f, "rules:\n  - {id: a, when: {crosses: hvl}}\n")
    watcher = RulesWatcher(
        tmp_path,
        load_rules(tmp_path, setting="GEXBOT_RULES"),
        universe=["BTCUSDT"],
        setting="GEXBOT_RULES",
    )
    _write(f, "rules:\n  - {id: a, when: {crosses: hlv}}\n")
    reload = watcher.reload()
    assert not reload.accepted
    assert len(reload.problems) == 1
    assert str(reload.problems[0]).startswith(f"{f}:4:29: unknown level `hlv` (did you mean hvl?)")
    assert [r.id for r in watcher.rules.rules] == ["a"]
    assert watcher.rules.rules[0].condition.level is not None
    assert not watcher.changed_on_disk()  # refused once, not re-logged every cycle
