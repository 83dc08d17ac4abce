"""The `/gex` Discord slash command: its registration, and interactions read as command text.

Discord sends a slash command as structured options; each sub-command here takes at most one
free-text option, so `/gex alert condition:btc crosses hvl` becomes `alert btc crosses hvl`
and goes through the same parser as Telegram and Slack (`core.commands`). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from gexbot.core.commands.chat import DESCRIPTIONS, MAX_INPUT, CommandName
from gexbot.core.present.render import DISCORD_CONTENT_LIMIT, NO_MENTIONS, cut_text

COMMAND = "gex"
EPHEMERAL = 64  # message flag: only the person who typed the command sees the answer


class InteractionType(IntEnum):
    """What Discord POSTs (discord.com/developers/docs/interactions/receiving-and-responding)."""

    PING = 1
    APPLICATION_COMMAND = 2
    MESSAGE_COMPONENT = 3  # a button or menu of one of our messages


class ResponseType(IntEnum):
    """How the endpoint answers."""

    PONG = 1
    MESSAGE = 4  # the answer itself
    DEFERRED = 5  # "thinking…", edited later
    UPDATE_MESSAGE = 7  # a component's answer: the message it sits on, edited


class OptionType(IntEnum):
    """Option types of a command (sub-command, string)."""

    SUB_COMMAND = 1
    STRING = 3


# Each sub-command's one free-text option: (name, description, required).
_OPTIONS: dict[CommandName, tuple[str, str, bool]] = {
    CommandName.LEVELS: ("symbols", "BTC, ETH, SOL, HYPE (all when empty)", False),
    CommandName.MUTE: ("what", "RULE|SYMBOL|#ID|all and a duration: hvl-cross 2h", True),
    CommandName.UNMUTE: ("what", "RULE|SYMBOL|#ID|all", True),
    CommandName.SUBSCRIBE: ("what", "RULE|SYMBOL", True),
    CommandName.UNSUBSCRIBE: ("what", "RULE|SYMBOL", True),
    CommandName.ALERT: ("condition", "btc crosses hvl · eth near cr 0.5% once", True),
    CommandName.UNALERT: ("id", "the alert's id (#12) or all", True),
}


def _describe(name: CommandName) -> str:
    # "levels [SYMBOL…] — current GEX levels" → "current GEX levels" (Discord allows 100).
    return DESCRIPTIONS[name].split(" — ", 1)[-1][:100]


def registration() -> list[dict[str, Any]]:
    """The body of `PUT /applications/{id}/commands`: one `/gex` command, a sub-command each."""
    subs: list[dict[str, Any]] = []
    for name in CommandName:
        sub: dict[str, Any] = {
            "name": name.value,
            "description": _describe(name),
            "type": OptionType.SUB_COMMAND,
        }
        if name in _OPTIONS:
            option, text, required = _OPTIONS[name]
            sub["options"] = [
                {
                    "name": option,
                    "description": text[:100],
                    "type": OptionType.STRING,
                    "required": required,
                    "max_length": MAX_INPUT,
                }
            ]
        subs.append(sub)
    return [{"name": COMMAND, "description": "GEX levels and alerts", "type": 1, "options": subs}]


@dataclass(frozen=True, slots=True)
class Invocation:
    """Who asked what, where."""

    text: str  # the command as it would be typed: "alert btc crosses hvl"
    user: str
    channel: str
    application_id: str
    token: str  # the interaction's token: the reply is edited and followed up with it
    id: str = ""  # the interaction's id (a Gateway reply is posted to it)


def read_invocation(payload: Mapping[str, Any]) -> Invocation | None:
    """An APPLICATION_COMMAND interaction as an Invocation (None: not our command)."""
    data = payload.get("data")
    if not isinstance(data, Mapping) or data.get("name") != COMMAND:
        return None
    words: list[str] = []
    for sub in data.get("options") or ():
        if not isinstance(sub, Mapping):
            continue
        words.append(str(sub.get("name", "")))
        words.extend(
            str(o.get("value", "")) for o in sub.get("options") or () if isinstance(o, Mapping)
        )
        break  # one sub-command per interaction
    member = payload.get("member")
    user = (member.get("user") if isinstance(member, Mapping) else None) or payload.get("user")
    user_id = str(user.get("id", "")) if isinstance(user, Mapping) else ""
    return Invocation(
        text=" ".join(w for w in words if w)[: MAX_INPUT + 20],
        user=user_id,
        channel=str(payload.get("channel_id", "")),
        application_id=str(payload.get("application_id", "")),
        token=str(payload.get("token", "")),
        id=str(payload.get("id", "")),
    )


def reply_data(text: str, *, monospace: bool) -> dict[str, Any]:
    """An ephemeral message with `text` (in a code block when monospace), within 2000
    characters, pinging no one."""
    if monospace:
        body = text.replace("```", "'''")[: DISCORD_CONTENT_LIMIT - 8]
        content = f"```\n{body}\n```"
    else:
        content = cut_text(text, DISCORD_CONTENT_LIMIT)
    return {"content": content, "flags": EPHEMERAL, "allowed_mentions": NO_MENTIONS}


@dataclass(frozen=True, slots=True)
class ComponentPress:
    """A press of a button (or a choice in a menu) on one of our messages."""

    data: str  # the button's custom_id, or the chosen option's value
    user: str
    username: str
    channel: str
    message: Mapping[str, Any]  # the message it sits on (its embeds and components)
    application_id: str
    token: str
    id: str


def read_press(payload: Mapping[str, Any]) -> ComponentPress | None:
    """A MESSAGE_COMPONENT interaction (None: anything else)."""
    data = payload.get("data")
    if not isinstance(data, Mapping):
        return None
    values = data.get("values")
    chosen = values[0] if isinstance(values, list) and values else data.get("custom_id", "")
    member = payload.get("member")
    user = (member.get("user") if isinstance(member, Mapping) else None) or payload.get("user")
    user = user if isinstance(user, Mapping) else {}
    message = payload.get("message")
    return ComponentPress(
        data=str(chosen)[:100],
        user=str(user.get("id", "")),
        username=str(user.get("username") or user.get("global_name") or user.get("id", "")),
        channel=str(payload.get("channel_id", "")),
        message=message if isinstance(message, Mapping) else {},
        application_id=str(payload.get("application_id", "")),
        token=str(payload.get("token", "")),
        id=str(payload.get("id", "")),
    )
