"""Every command opens the database through `gexbot.app.open_database`, and only `gexbot db
upgrade` (and the bot on its own SQLite file) changes the schema: a listing, a replay or a
prune under running replicas must never migrate their shared database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine

from gexbot.cli import main
from gexbot.store.engine import alembic_config, current_revision, head_revision

#: Read and edit commands: none may migrate.
MAINTENANCE = [
    ["alerts"],
    ["alerts", "rm", "1"],
    ["replay", "--source", "store", "--symbols", "BTC"],
    ["db", "prune"],
]


@pytest.fixture
def env(empty_db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    for name in list(os.environ):
        if name.startswith("GEXBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GEXBOT_DATABASE_URL", empty_db.url.render_as_string(hide_password=False))
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "channels: {t: {terminal: true}}\nrules: [{id: x, when: {crosses: hvl}, notify: t}]\n"
    )
    monkeypatch.setenv("GEXBOT_RULES", str(rules))
    return empty_db


def _previous_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_revision(head_revision())
    assert head is not None
    assert isinstance(head.down_revision, str)
    return head.down_revision


@pytest.mark.parametrize("argv", MAINTENANCE, ids=" ".join)
def test_a_maintenance_command_refuses_a_schema_behind_and_leaves_it_alone(
    env: Engine, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    behind = _previous_revision()
    command.upgrade(alembic_config(env), behind)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "GEXBOT_DATABASE_URL: the database schema is at revision" in err
    assert "run `gexbot db upgrade`" in err
    assert current_revision(env) == behind


@pytest.mark.parametrize("argv", MAINTENANCE, ids=" ".join)
def test_a_maintenance_command_on_a_current_schema_runs(
    env: Engine, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    # each answers from the (empty) store: nothing listed, nothing to delete, no history
    assert (code, out + err) != (2, "")
    assert code in {0, 1}
    assert current_revision(env) == head_revision()


def test_reads_of_a_database_the_bot_never_ran_on_create_no_schema(
    env: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["alerts"]) == 0
    assert "no personal alerts" in capsys.readouterr().out
    assert main(["replay", "--source", "store", "--symbols", "BTC"]) == 1
    assert "no history for BTCUSDT" in capsys.readouterr().err
    assert current_revision(env) is None


def test_only_db_upgrade_migrates(env: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    command.upgrade(alembic_config(env), _previous_revision())
    assert main(["db", "upgrade"]) == 0
    assert f"database at revision {head_revision()}" in capsys.readouterr().out
    assert current_revision(env) == head_revision()


def test_a_read_of_a_missing_sqlite_file_does_not_create_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("GEXBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GEXBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'never.db'}")
    assert main(["alerts"]) == 0
    assert not (tmp_path / "never.db").exists()
