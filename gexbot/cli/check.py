"""`gexbot check` and the start-up checks `run` shares with it."""

from __future__ import annotations

from rich.console import Console

from gexbot.cli import EXIT_INVALID, EXIT_OK, count
from gexbot.core.language.model import ChannelKind, RuleSet
from gexbot.core.language.rulefile import RulesError
from gexbot.loops.rules import load_rules
from gexbot.settings import Settings, SettingsError, env_name, load_settings, webhook_problems

#: The setting that enables each platform.
TOKEN_SETTING = {
    ChannelKind.SLACK: "slack_bot_token",
    ChannelKind.TELEGRAM: "telegram_bot_token",
    ChannelKind.DISCORD: "discord_bot_token",
}


def check(console: Console, err: Console) -> int:
    """`gexbot check`: every problem of the settings and the rules, or a one-line summary."""
    problems: list[str] = []
    try:
        settings = load_settings()
    except SettingsError as exc:
        problems.extend(exc.problems)
        settings = None
    ruleset = None
    if settings is not None:
        problems.extend(settings.unsupported_symbols())
        more, ruleset = startup_problems(settings, need_key=False)
        problems.extend(more)
    for line in problems:
        err.print(line, markup=False, highlight=False, soft_wrap=True)
    if problems or settings is None or ruleset is None:
        err.print(count(len(problems), "problem"), markup=False, highlight=False)
        return EXIT_INVALID
    covered = ruleset.symbols_covered(settings.symbols)
    console.print(
        f"OK: {count(len(ruleset.rules), 'rule')}, {count(len(ruleset.channels), 'channel')}, "
        f"{len(covered)} of {count(len(settings.symbols), 'symbol')} covered "
        f"({', '.join(covered)})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return EXIT_OK


def startup_problems(settings: Settings, *, need_key: bool) -> tuple[list[str], RuleSet | None]:
    """Every reason the bot cannot start (the same report as `gexbot check`)."""
    problems: list[str] = []
    if need_key and (settings.api_key is None or not settings.api_key.get_secret_value()):
        problems.append(
            "GEXBOT_API_KEY: required (your BackQuant API key)"
            + (" with GEXBOT_SOURCE=both" if settings.levels_source == "both" else "")
        )
    ruleset = None
    try:
        ruleset = load_rules(settings.rules, universe=settings.symbols, setting=env_name("rules"))
    except RulesError as exc:
        problems.extend(str(p) for p in exc.problems)
    else:
        problems.extend(channel_problems(settings, ruleset))
    problems.extend(slack_endpoint_problems(settings))
    problems.extend(discord_command_problems(settings))
    return problems, ruleset


def channel_problems(settings: Settings, rules: RuleSet) -> list[str]:
    """Channels the rules use on a platform whose token is not set, and webhooks whose
    variables are missing or wrong."""
    used = set(rules.warnings_notify) | {c for r in rules.rules for c in r.notify}
    problems: list[str] = []
    for name in sorted(used):
        channel = rules.channels.get(name)
        if channel is not None and channel.kind is ChannelKind.WEBHOOK:
            problems.extend(
                f"{line} (channel `{name}`)"
                for line in webhook_problems(channel.target, settings.webhook(channel.target))
            )
            continue
        if channel is None or channel.kind not in TOKEN_SETTING:
            continue
        field = TOKEN_SETTING[channel.kind]
        if getattr(settings, field) is None:
            problems.append(
                f"{env_name(field)}: required by channel `{name}` ({channel.kind.value} "
                f"{channel.target}); set it or remove the channel from the rules"
            )
    return problems


def slack_endpoint_problems(settings: Settings) -> list[str]:
    """The HTTP endpoint for Slack commands needs a port and the bot token."""
    if settings.slack_signing_secret is None:
        return []
    var = env_name("slack_signing_secret")
    problems = []
    if settings.http_port == 0:
        problems.append(
            f"{var}: the Slack command endpoint needs {env_name('http_port')} (it is 0, off)"
        )
    if settings.slack_bot_token is None:
        problems.append(f"{var}: Slack commands also need {env_name('slack_bot_token')}")
    return problems


def discord_command_problems(settings: Settings) -> list[str]:
    """Discord commands need the bot token (replies and registration go through it), and the
    Interactions endpoint a port."""
    problems = []
    token = env_name("discord_bot_token")
    for field in ("discord_public_key", "discord_application_id", "discord_gateway"):
        if getattr(settings, field) and settings.discord_bot_token is None:
            problems.append(f"{env_name(field)}: Discord commands also need {token}")
    if settings.discord_public_key is not None and settings.http_port == 0:
        problems.append(
            f"{env_name('discord_public_key')}: the Discord Interactions endpoint needs "
            f"{env_name('http_port')} (it is 0, off)"
        )
    return problems
