"""Settings from `GEXBOT_*` environment variables and `.env` (see README and `.env.example`).

Problems are reported by the variable's name, and a secret's value never appears in them.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from gexbot.core.language.model import SNOWFLAKE, webhook_env, webhook_key
from gexbot.core.market.symbols import SUPPORTED_SYMBOLS, normalize_symbol, suggest_symbol

ENV_PREFIX = "GEXBOT_"
# GEXBOT_WEBHOOK_<NAME>_URL / _SECRET / _TIMEOUT: names are the users', so no fixed field.
_WEBHOOK_VAR = re.compile(r"^gexbot_webhook_([a-z0-9_]+?)_(url|secret|timeout)$")


class WebhookSettings(BaseModel):
    """One webhook's variables, as given: `gexbot check` and the notifier judge them, so a
    bad URL is reported by its variable's name, never by its value."""

    url: SecretStr | None = None  # a URL often embeds a token: a secret
    secret: SecretStr | None = None
    timeout: str | None = None


WEBHOOK_TIMEOUT = 10.0  # seconds a receiver may take, unless GEXBOT_WEBHOOK_<NAME>_TIMEOUT
MAX_WEBHOOK_TIMEOUT = 60.0


def webhook_problems(name: str, hook: WebhookSettings | None) -> list[str]:
    """What keeps webhook `name` from delivering, each line naming its variable (never a
    value: the URL and the secret are secrets)."""
    url = hook.url.get_secret_value().strip() if hook and hook.url else ""
    if not url:
        return [f"{webhook_env(name, 'url')}: required by the webhook `{name}`; set it"]
    problems = []
    if not re.match(r"^https?://[^/\s]+", url, re.IGNORECASE):
        problems.append(f"{webhook_env(name, 'url')}: must be an http:// or https:// URL")
    if hook is not None and hook.timeout is not None:
        try:
            seconds = float(hook.timeout)
        except ValueError:
            seconds = -1.0
        if not 0 < seconds <= MAX_WEBHOOK_TIMEOUT:
            problems.append(
                f"{webhook_env(name, 'timeout')}: seconds, more than 0 and at most "
                f"{MAX_WEBHOOK_TIMEOUT:g} (got {hook.timeout!r})"
            )
    if hook is not None and hook.secret is not None and not hook.secret.get_secret_value():
        problems.append(f"{webhook_env(name, 'secret')}: is empty; unset it or set a secret")
    return problems


class _WebhookSource(PydanticBaseSettingsSource):
    """Collects GEXBOT_WEBHOOK_* from the environment and `.env` (the environment wins)."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        *layers: PydanticBaseSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        self._layers = layers  # highest priority first

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # noqa: ARG002 - the interface's signature
        """Unused: `__call__` builds the one field this source feeds."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        hooks: dict[str, dict[str, str]] = {}
        for layer in reversed(self._layers):
            for key, value in getattr(layer, "env_vars", {}).items():
                match = _WEBHOOK_VAR.match(key.lower())
                if match and value is not None:
                    hooks.setdefault(match[1].upper(), {})[match[2]] = value
        return {"webhooks": hooks} if hooks else {}


VenueName = Literal["deribit", "bybit", "okx"]
ALL_VENUES: tuple[VenueName, ...] = ("deribit", "bybit", "okx")


def _csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _default_instance() -> str:
    """`host-pid`: unique among replicas, and readable in /status and the logs."""
    host = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname())
    return f"{host[:100]}-{os.getpid()}"


class Settings(BaseSettings):
    """Every setting of the bot. Field `x` is read from `GEXBOT_X`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    api_key: SecretStr | None = None
    api_url: str = "https://api.backquant.com"
    #: Where levels come from; unset: BackQuant when a key is set, else the venues' chains.
    source: Literal["backquant", "chains", "both"] | None = None
    chain_venues: Annotated[list[VenueName], NoDecode] = Field(
        default_factory=lambda: list(ALL_VENUES), min_length=1
    )
    deribit_url: str = "https://www.deribit.com"
    bybit_url: str = "https://api.bybit.com"
    okx_url: str = "https://www.okx.com"
    #: Seconds between two refreshes of the chains (BackQuant's own cadence; the demo's fast
    #: market lowers it, the real venues should not be asked more often).
    chain_refresh: float = Field(30.0, ge=0.5)
    #: Which strikes below spot are the chains' put walls: `negative` (most negative net GEX,
    #: most vendors' reading) or `positive` (largest positive, BackQuant's written definition).
    chain_put_walls: Literal["negative", "positive"] = "negative"
    #: `both`: seconds between cross-checks of BackQuant's std levels against the chains (0: off).
    cross_check_every: float = Field(60.0, ge=0)
    cross_check_level_pct: float = Field(1.0, ge=0, le=100)  # HVLs, max pain: % of spot
    cross_check_wall_pct: float = Field(0.0, ge=0, le=100)  # walls: 0 means the same strike
    cross_check_after: int = Field(3, ge=1, le=100)  # checks running before a warning
    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(SUPPORTED_SYMBOLS))
    exchanges: Annotated[list[str] | None, NoDecode] = None
    poll_interval: float = Field(30.0, gt=0)
    database_url: str = "sqlite:///gexbot.db"
    rules: Path = Path("rules")
    retention_days: float = Field(30.0, gt=0)
    missing_after: float = Field(90.0, ge=0)
    stale_after: float = Field(90.0, gt=0)
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_signing_secret: SecretStr | None = None
    slack_allowed_users: Annotated[list[str], NoDecode] = Field(default_factory=list)
    telegram_bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_allowed_users: Annotated[list[int], NoDecode] = Field(default_factory=list)
    telegram_poll_timeout: float = Field(25.0, gt=0, le=50)
    discord_bot_token: SecretStr | None = None
    discord_api_url: str = "https://discord.com/api/v10"
    discord_application_id: str | None = None
    discord_public_key: str | None = None
    discord_allowed_users: Annotated[list[str], NoDecode] = Field(default_factory=list)
    discord_gateway: bool = False
    #: Follow-ups (reminders, resolutions) in the first message's thread, per platform.
    slack_threads: bool = True
    telegram_threads: bool = True
    discord_threads: bool = True
    #: Buttons (snooze, mute, chart, levels, delete) on every Telegram and Slack alert.
    telegram_buttons: bool = True
    slack_buttons: bool = True
    #: Discord's need the Interactions endpoint or the Gateway to be answered.
    discord_buttons: bool = True
    chat_alerts_per_chat: int = Field(25, ge=0, le=10_000)
    http_port: int = Field(0, ge=0, le=65535)
    http_host: str = "127.0.0.1"
    http_token: SecretStr | None = None
    log_format: Literal["text", "json"] = "text"
    instance: str = Field(default_factory=_default_instance)
    leader_lease: float = Field(10.0, ge=0.5, le=300)
    delivery_lease: float = Field(60.0, ge=1, le=3600)
    webhooks: dict[str, WebhookSettings] = Field(default_factory=dict)  # by NAME, upper-cased

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources, plus the webhooks' variables gathered under `webhooks`."""
        webhooks = _WebhookSource(settings_cls, env_settings, dotenv_settings)
        return init_settings, env_settings, dotenv_settings, webhooks, file_secret_settings

    @field_validator("instance", mode="before")
    @classmethod
    def _blank_instance(cls, value: Any) -> Any:
        return _default_instance() if isinstance(value, str) and not value.strip() else value

    @field_validator("instance")
    @classmethod
    def _instance_name(cls, value: str) -> str:
        value = value.strip()
        if not value or len(value) > 128 or not all(c.isalnum() or c in "-_.:@" for c in value):
            raise ValueError("1 to 128 letters, digits or - _ . : @")
        return value

    @field_validator(
        "api_key",
        "slack_bot_token",
        "slack_app_token",
        "slack_signing_secret",
        "telegram_bot_token",
        "discord_bot_token",
        "http_token",
        "discord_application_id",
        "discord_public_key",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # `.env.example` ships `GEXBOT_SLACK_BOT_TOKEN=`; an empty value means "not configured".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: Any) -> Any:
        value = _csv(value)
        if isinstance(value, list):
            return list(dict.fromkeys(normalize_symbol(str(v)) for v in value if str(v).strip()))
        return value

    @field_validator("symbols")
    @classmethod
    def _at_least_one(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one symbol is required")
        return value

    @field_validator("exchanges", mode="before")
    @classmethod
    def _split_exchanges(cls, value: Any) -> Any:
        value = _csv(value)
        if isinstance(value, list) and (not value or value == ["all"]):
            return None
        return value

    @field_validator("discord_application_id")
    @classmethod
    def _snowflake(cls, value: str | None) -> str | None:
        if value is not None and not SNOWFLAKE.match(value.strip()):
            raise ValueError("a Discord id: 17 to 20 digits")
        return value.strip() if value is not None else None

    @field_validator("discord_public_key")
    @classmethod
    def _ed25519_hex(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", value.strip()):
            raise ValueError("the application's public key: 64 hex digits (developer portal)")
        return value.strip().lower() if value is not None else None

    @field_validator("discord_allowed_users")
    @classmethod
    def _discord_users(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not SNOWFLAKE.match(v)]
        if bad:
            raise ValueError(f"Discord user ids are 17 to 20 digits (got {', '.join(bad)})")
        return value

    @field_validator(
        "telegram_allowed_users", "slack_allowed_users", "discord_allowed_users", mode="before"
    )
    @classmethod
    def _split_users(cls, value: Any) -> Any:
        return _csv(value)

    @field_validator("source", mode="before")
    @classmethod
    def _empty_source_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("chain_venues", mode="before")
    @classmethod
    def _split_venues(cls, value: Any) -> Any:
        return [v.lower() for v in _csv(value)] if isinstance(value, str) else value

    @property
    def levels_source(self) -> Literal["backquant", "chains", "both"]:
        """The source in force: GEXBOT_SOURCE, else BackQuant with a key and chains without."""
        if self.source is not None:
            return self.source
        return "backquant" if self.api_key is not None else "chains"

    @field_validator(
        "api_url",
        "slack_api_url",
        "telegram_api_url",
        "discord_api_url",
        "deribit_url",
        "bybit_url",
        "okx_url",
    )
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    def webhook(self, name: str) -> WebhookSettings | None:
        """The variables of webhook `name` (as the rules write it: `desk-ops`)."""
        return self.webhooks.get(webhook_key(name))

    def unsupported_symbols(self) -> list[str]:
        """Configured symbols outside BackQuant's documented universe, with a hint each."""
        problems = []
        for sym in self.symbols:
            if sym not in SUPPORTED_SYMBOLS:
                hint = suggest_symbol(sym)
                tail = f" (did you mean {hint}?)" if hint else ""
                problems.append(
                    f"{env_name('symbols')}: {sym} is not a supported symbol{tail}; "
                    f"supported: {', '.join(SUPPORTED_SYMBOLS)}"
                )
        return problems


_SECRET_FIELDS = frozenset(
    name for name, info in Settings.model_fields.items() if "SecretStr" in str(info.annotation)
)


def env_name(field: str) -> str:
    """The environment variable that sets `field`."""
    return f"{ENV_PREFIX}{field.upper()}"


class SettingsError(Exception):
    """Settings are invalid; `problems` holds one line per problem, each naming its variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def describe_validation_error(exc: ValidationError) -> list[str]:
    """One line per problem, `GEXBOT_X: message (got 'value')`; never a secret's value."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = err.get("loc", ())
        field = str(loc[0]) if loc else "?"
        # Our own validators' messages come prefixed by pydantic: "Value error, …".
        line = f"{env_name(field)}: {err['msg'].removeprefix('Value error, ')}"
        if field not in _SECRET_FIELDS and "input" in err and isinstance(err["input"], str | int):
            line += f" (got {err['input']!r})"
        lines.append(line)
    return lines


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Read settings from the environment (and `env_file`), raising SettingsError on problems."""
    try:
        return Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
