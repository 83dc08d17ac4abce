"""The `gexbot` command as a user runs it: real processes, real HTTP, the simulator."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import sim_server
from tests.waiting import until_sync

ROOT = Path(__file__).resolve().parents[1]
WRONG_KEY = "bq_live_ffffffffffffffffffffffffffffffff"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEXBOT_")}
    env.update(extra)
    env["COLUMNS"] = "120"
    return env


def gexbot(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gexbot", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def _start_run(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """`gexbot run` in the background, its stderr kept for the assertions."""
    return subprocess.Popen(
        [sys.executable, "-m", "gexbot", "run"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def sim_url(tmp_path: Path) -> Iterator[str]:
    with sim_server("--seed", "5", env=_env(tmp_path), cwd=tmp_path) as url:
        yield url


def test_levels_prints_a_table_per_symbol_and_flags_invalid_ones(
    sim_url: str, tmp_path: Path
) -> None:
    env = _env(tmp_path, GEXBOT_API_URL=sim_url, GEXBOT_API_KEY="demo")
    out = gexbot("levels", "btc", "ETHUSDT", "DOGE", env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "BTCUSDT  spot" in text
    assert "ETHUSDT  spot" in text
    assert re.search(r"HVL\s+[\d,]+\s+[+-]\d+\.\d\d%", text)
    assert re.search(r"(above|below) HVL", text)
    assert "data age" in text
    assert "DOGE: not a supported symbol" in text


def test_levels_defaults_to_the_configured_universe(sim_url: str, tmp_path: Path) -> None:
    env = _env(tmp_path, GEXBOT_API_URL=sim_url, GEXBOT_API_KEY="demo", GEXBOT_SYMBOLS="SOL,HYPE")
    out = gexbot("levels", env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "SOLUSDT  spot" in out.stdout
    assert "HYPEUSDT  spot" in out.stdout
    assert "BTCUSDT" not in out.stdout


def test_wrong_key_is_one_clear_error_naming_the_setting(sim_url: str, tmp_path: Path) -> None:
    env = _env(tmp_path, GEXBOT_API_URL=sim_url, GEXBOT_API_KEY=WRONG_KEY)
    out = gexbot("-v", "levels", "BTC", env=env, cwd=tmp_path)
    assert out.returncode == 2
    assert "GEXBOT_API_KEY" in out.stderr
    assert "401" in out.stderr
    assert WRONG_KEY not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_missing_key_is_named(tmp_path: Path) -> None:
    # Asked for BackQuant explicitly (without a key and unset, the chains are the source).
    out = gexbot("levels", env=_env(tmp_path, GEXBOT_SOURCE="backquant"), cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip() == "GEXBOT_API_KEY: required (your BackQuant API key)"


def test_unreachable_api_is_a_clean_failure(tmp_path: Path) -> None:
    env = _env(tmp_path, GEXBOT_API_URL="http://127.0.0.1:9", GEXBOT_API_KEY="k")
    out = gexbot("levels", "BTC", env=env, cwd=tmp_path)
    assert out.returncode == 2
    assert "connection failed" in out.stderr
    assert "Traceback" not in out.stderr


def test_check_reports_every_settings_problem_by_name(tmp_path: Path) -> None:
    env = _env(tmp_path, GEXBOT_POLL_INTERVAL="-3", GEXBOT_HTTP_PORT="http")
    out = gexbot("check", env=env, cwd=tmp_path)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "GEXBOT_POLL_INTERVAL",
        "GEXBOT_HTTP_PORT",
        "2 problems",
    ]


def test_check_flags_a_misspelt_symbol(tmp_path: Path) -> None:
    out = gexbot("check", env=_env(tmp_path, GEXBOT_SYMBOLS="BTCUSDT,ETHUSTD"), cwd=tmp_path)
    assert out.returncode == 1
    assert "GEXBOT_SYMBOLS: ETHUSTD is not a supported symbol (did you mean ETHUSDT?)" in out.stderr


def test_check_passes_on_defaults_with_the_example_rules(tmp_path: Path) -> None:
    out = gexbot("check", env=_env(tmp_path, GEXBOT_RULES=str(ROOT / "rules")), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK: 11 rules, 1 channel, 4 of 4 symbols covered")


@pytest.mark.slow
def test_demo_runs_the_bot_on_embedded_defaults_and_alerts_quickly(tmp_path: Path) -> None:
    env = _env(tmp_path, GEXBOT_RULES=str(ROOT / "rules"))
    out = gexbot("demo", "--for", "25", "--levels", env=env, cwd=tmp_path, timeout=90)
    assert out.returncode == 0, out.stderr
    assert "gexbot demo" in out.stdout
    assert re.search(r"Web console: http://127\.0\.0\.1:\d+/", out.stdout), out.stdout
    assert "health and metrics on http://127.0.0.1:" in out.stderr  # the console's port is up
    assert "BTCUSDT  spot" in out.stdout
    # Both sources, as a newcomer should see them: the chains cross-check BackQuant.
    said = " ".join(out.stdout.split())
    assert "with the Deribit, Bybit and OKX option chains as cross-check and fallback" in said
    assert "BackQuant std and the chains agree" in said
    alerts = [line for line in out.stdout.splitlines() if any(m in line for m in "🔴🟠🔵")]
    assert alerts, out.stdout
    assert "gexbot started" in out.stderr
    assert "gexbot stopped" in out.stderr
    assert not list(tmp_path.glob("*.db"))  # the demo's database lives in a temp directory


def test_sim_server_rejects_a_bad_scenario_with_the_file_name(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("steps: [{at: 0, spot: {NOPE: 1}}]")
    out = gexbot("sim-server", "--scenario", str(bad), env=_env(tmp_path), cwd=tmp_path)
    assert out.returncode == 1
    assert f"{bad}:1:24: steps.0.spot.NOPE: unknown symbol NOPE" in out.stderr


def test_run_with_bad_settings_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    env = _env(tmp_path, GEXBOT_POLL_INTERVAL="0", GEXBOT_LOG_FORMAT="xml")
    out = gexbot("run", env=env, cwd=tmp_path)
    assert out.returncode == 2
    assert "GEXBOT_POLL_INTERVAL" in out.stderr
    assert "GEXBOT_LOG_FORMAT" in out.stderr
    assert "gexbot did not start: 2 problems" in out.stderr


def test_run_without_key_or_rules_names_both_and_exits_2(tmp_path: Path) -> None:
    # BackQuant asked for by name: its key is required (unset, the chains need none).
    out = gexbot("run", env=_env(tmp_path, GEXBOT_SOURCE="backquant"), cwd=tmp_path)
    assert out.returncode == 2
    assert "GEXBOT_API_KEY: required" in out.stderr
    assert "GEXBOT_RULES: no such file or directory" in out.stderr
    assert not (tmp_path / "gexbot.db").exists()  # nothing started half-configured


def _locked(path: Path) -> bool:
    """Whether another process holds the bot's lock on `path` (a non-blocking try says)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _last_poll(db: Path) -> object:
    """When a bot on `db` last stored a snapshot (None before any; a bot storing one is
    running its loops)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return conn.execute("SELECT max(received_at) FROM snapshot_last").fetchone()[0]
    except sqlite3.Error:  # not created yet, or busy mid-write
        return None


def test_a_second_process_on_the_same_sqlite_file_is_refused(sim_url: str, tmp_path: Path) -> None:

    env = _env(
        tmp_path,
        GEXBOT_API_URL=sim_url,
        GEXBOT_API_KEY="demo",
        GEXBOT_RULES=str(ROOT / "rules"),
        GEXBOT_POLL_INTERVAL="5",
    )
    with _start_run(env, tmp_path) as first:
        try:
            until_sync(
                lambda: _locked(tmp_path / "gexbot.db.lock"),
                timeout=30,
                what="the first process to hold the database",
            )
            second = gexbot("run", env=env, cwd=tmp_path)
            assert second.returncode == 2
            assert "another gexbot is already running on this SQLite database" in second.stderr
            assert first.poll() is None  # the first one is unaffected
        finally:
            first.terminate()
            assert first.wait(timeout=10) == 0
    # Once it is gone, a new process starts normally (the kernel dropped the lock).
    before = _last_poll(tmp_path / "gexbot.db")
    third = _start_run(env, tmp_path)
    until_sync(
        lambda: third.poll() is not None or _last_poll(tmp_path / "gexbot.db") != before,
        timeout=60,
        what="the new process's first poll",
    )
    assert third.poll() is None
    third.terminate()
    _, err = third.communicate(timeout=10)
    assert third.returncode == 0, err


def test_log_format_json_is_read_from_the_env_file(tmp_path: Path) -> None:
    import json

    (tmp_path / ".env").write_text("GEXBOT_LOG_FORMAT=json\n")
    done = gexbot("-v", "db", "upgrade", env=_env(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    logged = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert any(e["message"].startswith("migrating database") for e in logged)
