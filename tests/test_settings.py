"""Settings: environment parsing, errors named by variable, secrets kept out of messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gexbot.settings import Settings, SettingsError, env_name, load_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("GEXBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_match_the_product_contract() -> None:
    s = load_settings(env_file=None)
    assert s.api_url == "https://api.backquant.com"
    assert s.symbols == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "HYPEUSDT"]
    assert s.exchanges is None
    assert s.poll_interval == 30
    assert s.missing_after == 90
    assert s.stale_after == 90
    assert s.database_url == "sqlite:///gexbot.db"
    assert s.rules == Path("rules")
    assert s.http_port == 0
    assert s.http_host == "127.0.0.1"
    assert s.log_format == "text"
    assert s.telegram_api_url == "https://api.telegram.org/bot"


def test_csv_lists_and_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEXBOT_SYMBOLS", " btc, ETHUSDT ,eth,, SOL ")
    monkeypatch.setenv("GEXBOT_EXCHANGES", "deribit,bybit")
    monkeypatch.setenv("GEXBOT_TELEGRAM_ALLOWED_USERS", "123, 456")
    monkeypatch.setenv("GEXBOT_POLL_INTERVAL", "0.5")
    s = load_settings(env_file=None)
    assert s.symbols == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert s.exchanges == ["deribit", "bybit"]
    assert s.telegram_allowed_users == [123, 456]
    assert s.poll_interval == 0.5


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GEXBOT_POLL_INTERVAL=5\nGEXBOT_API_KEY=bq_live_x\n")
    s = load_settings()
    assert s.poll_interval == 5
    assert s.api_key is not None
    assert s.api_key.get_secret_value() == "bq_live_x"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("GEXBOT_POLL_INTERVAL", "0"),
        ("GEXBOT_POLL_INTERVAL", "fast"),
        ("GEXBOT_HTTP_PORT", "70000"),
        ("GEXBOT_LOG_FORMAT", "xml"),
        ("GEXBOT_API_URL", "api.backquant.com"),
        ("GEXBOT_TELEGRAM_ALLOWED_USERS", "12,abc"),
        ("GEXBOT_SYMBOLS", " , "),
        ("GEXBOT_STALE_AFTER", "-1"),
        ("GEXBOT_INSTANCE", "desk a!"),
        ("GEXBOT_LEADER_LEASE", "0.1"),
        ("GEXBOT_DELIVERY_LEASE", "0"),
    ],
)
def test_bad_values_are_reported_by_variable_name(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as info:
        load_settings(env_file=None)
    assert any(line.startswith(f"{var}: ") for line in info.value.problems), info.value.problems


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEXBOT_POLL_INTERVAL", "0")
    monkeypatch.setenv("GEXBOT_LOG_FORMAT", "xml")
    with pytest.raises(SettingsError) as info:
        load_settings(env_file=None)
    assert len(info.value.problems) == 2


def test_secrets_never_appear_in_reprs_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "xoxb-very-secret-token-value"
    monkeypatch.setenv("GEXBOT_SLACK_BOT_TOKEN", secret)
    monkeypatch.setenv("GEXBOT_API_KEY", secret + "-key")
    s = load_settings(env_file=None)
    assert secret not in repr(s)
    assert secret not in str(s.model_dump())
    # An invalid secret-typed value is named but not echoed.
    monkeypatch.setenv("GEXBOT_TELEGRAM_ALLOWED_USERS", "x")
    monkeypatch.setenv("GEXBOT_HTTP_PORT", secret)
    with pytest.raises(SettingsError) as info:
        load_settings(env_file=None)
    assert "GEXBOT_HTTP_PORT" in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is not None
    assert "-key" not in str(info.value)


def test_unsupported_symbols_are_named_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEXBOT_SYMBOLS", "BTCUSD,ETHUSDT")
    problems = load_settings(env_file=None).unsupported_symbols()
    assert len(problems) == 1
    assert problems[0].startswith("GEXBOT_SYMBOLS: BTCUSD is not a supported symbol")
    assert "did you mean BTCUSDT?" in problems[0]


def test_env_example_lists_every_setting_with_a_comment() -> None:
    text = (ROOT / ".env.example").read_text()
    lines = text.splitlines()
    documented = {}
    for i, line in enumerate(lines):
        m = re.match(r"^(GEXBOT_[A-Z_]+)=", line)
        if m:
            documented[m.group(1)] = lines[i - 1]
    # `webhooks` is not one variable: it gathers GEXBOT_WEBHOOK_<NAME>_*, shown by an example.
    expected = {env_name(f) for f in Settings.model_fields if f != "webhooks"}
    assert set(documented) == expected
    assert all(comment.startswith("#") for comment in documented.values())
    for part in ("URL", "SECRET", "TIMEOUT"):
        assert f"\n#GEXBOT_WEBHOOK_N8N_{part}=" in text


def test_env_example_loads_as_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(env_file=ROOT / ".env.example")
    assert s.symbols == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "HYPEUSDT"]
    assert s.exchanges is None
    assert s.api_key is None
    assert s.slack_bot_token is None
    assert s.telegram_allowed_users == []
