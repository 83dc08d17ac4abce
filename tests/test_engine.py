"""Database URLs, connection errors, SQLite locking, retention, and `gexbot db`."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from gexbot.app import Purpose, open_database
from gexbot.cli import main
from gexbot.settings import load_settings
from gexbot.store.engine import DatabaseError, head_revision, make_engine, masked, migrate
from gexbot.store.outbox import claim, enqueue, mark_sent
from gexbot.store.prune import prune
from gexbot.store.snapshots import save_snapshot
from gexbot.store.tables import outbox, snapshot_history
from tests.rulekit import T0, alert_event, bundle, snapshot


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("GEXBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (
            "postgresql+psycopg://bob:hunter2@127.0.0.1:1/x",
            "cannot connect to postgresql+psycopg://bob:***@127.0.0.1:1/x",
        ),
        ("mysql://bob:hunter2@db/x", "no driver for mysql"),
        ("not a url", "not a database URL"),
        ("sqlite:////nonexistent/dir/x.db", "cannot connect to sqlite:////nonexistent/dir/x.db"),
    ],
)
def test_bad_database_urls_are_one_clear_error_with_the_password_masked(
    url: str, says: str
) -> None:
    with (
        pytest.raises(DatabaseError) as info,
        open_database(load_settings(None, database_url=url), Purpose.RUN),
    ):
        pass
    text = str(info.value)
    assert text.startswith("GEXBOT_DATABASE_URL: ")
    assert says in text
    assert "hunter2" not in text
    assert info.value.__cause__ is None  # the driver's message (and URL) is not chained


def test_masked_hides_only_the_password() -> None:
    assert masked("postgresql+psycopg://u:p4ss@h:5432/d") == "postgresql+psycopg://u:***@h:5432/d"


def test_a_locked_sqlite_file_is_waited_on(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    locked = threading.Event()

    def other_writer() -> None:  # another process, mid-write for half a second
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(0.5)
        holder.execute("COMMIT")
        holder.close()

    thread = threading.Thread(target=other_writer)
    thread.start()
    locked.wait()
    t0 = time.perf_counter()
    with engine.begin() as conn:
        save_snapshot(conn, bundle(snapshot(1.0, hvl=2.0)))
    assert time.perf_counter() - t0 >= 0.4
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(snapshot_history)).scalar() == 1
    thread.join()
    engine.dispose()


def test_prune_deletes_old_sent_rows_and_history_but_keeps_the_rest(db: Engine) -> None:
    event = alert_event(key="k", rule_id="r")
    with db.begin() as conn:
        enqueue(conn, [(event, ["a", "b"])], now=T0)
        row = claim(conn, now=T0, lease=30, limit=1)[0]
        mark_sent(conn, row, now=T0, provider_id=None)
        save_snapshot(conn, bundle(snapshot(1.0, hvl=2.0)))
    done = prune(db, now=T0 + timedelta(days=31), retention_days=30)
    assert (done.sent, done.history) == (1, 1)
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar() == 1  # pending


def test_db_upgrade_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade"]) == 0
    assert (
        f"database at revision {head_revision()} (sqlite:///gexbot.db)" in capsys.readouterr().out
    )
    assert (tmp_path / "gexbot.db").exists()
    assert main(["db", "prune"]) == 0
    assert "pruned 0 sent messages" in capsys.readouterr().out


def test_db_command_with_an_unreachable_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GEXBOT_DATABASE_URL", "postgresql+psycopg://u:topsecret@127.0.0.1:1/d")
    assert main(["db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert "GEXBOT_DATABASE_URL: cannot connect" in err
    assert "topsecret" not in err
